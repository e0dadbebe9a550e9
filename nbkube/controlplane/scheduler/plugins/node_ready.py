"""Filter NodeReadySchedulable: skip nodes that are not Ready or are cordoned.

Why: a cordoned node (`spec.unschedulable`, set by `nbkube cordon`/`drain`) must take no new pods,
and a node whose agent stopped reporting Ready would only strand them. Called by the Framework as a
static filter (it reads only the node object and the pod's tolerations).
"""

from __future__ import annotations

from collections.abc import Sequence

from nbkube.controlplane.scheduler.framework import NodeInfo, PodInfo
from nbkube.controlplane.scheduler.plugins.taint_toleration import tolerates

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
MSG_UNSCHEDULABLE = "node(s) were unschedulable"
MSG_NOT_READY = "node(s) were not ready"


def node_ready_schedulable(pod: PodInfo, node: NodeInfo) -> list[str]:
    """Reasons `node` cannot take `pod` because of its state (empty list: it can)."""
    if node.unschedulable and not tolerates(pod.tolerations, (UNSCHEDULABLE_TAINT, "", "NoSchedule")):
        return [MSG_UNSCHEDULABLE]
    if not node.ready:
        return [MSG_NOT_READY]
    return []


class NodeReadySchedulable:
    name = "NodeReadySchedulable"
    static = True

    def applies(self, pod: PodInfo) -> bool:
        return True

    def filter(self, pod: PodInfo, node: NodeInfo) -> Sequence[str]:
        return node_ready_schedulable(pod, node)
