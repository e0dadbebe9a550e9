"""Filter NodeResourcesFit: the pod's requests must fit in allocatable minus what is bound.

Why: over-committing cpu/memory or the pod-count limit would make the node agent reject or starve
pods. Reads the running sums a NodeInfo keeps (bound + assumed pods), so it is O(1) per node; it is
a dynamic filter (the sums change with every bind).
"""

from __future__ import annotations

from collections.abc import Sequence

from nbkube.controlplane.scheduler.framework import NodeInfo, PodInfo

MSG_PODS = "Too many pods"
MSG_CPU = "Insufficient cpu"
MSG_MEMORY = "Insufficient memory"


def resources_fit(pod: PodInfo, node: NodeInfo) -> list[str]:
    """Every resource that is short (upstream reports them all, pods first)."""
    out: list[str] = []
    if len(node.pods) + 1 > node.alloc_pods:
        out.append(MSG_PODS)
    if pod.cpu and node.requested_cpu + pod.cpu > node.alloc_cpu:
        out.append(MSG_CPU)
    if pod.memory and node.requested_memory + pod.memory > node.alloc_memory:
        out.append(MSG_MEMORY)
    return out


class NodeResourcesFit:
    name = "NodeResourcesFit"
    static = False

    def applies(self, pod: PodInfo) -> bool:
        return True

    def filter(self, pod: PodInfo, node: NodeInfo) -> Sequence[str]:
        # The common case inline: everything fits, no list built.
        if (
            len(node.pods) < node.alloc_pods
            and node.requested_cpu + pod.cpu <= node.alloc_cpu
            and node.requested_memory + pod.memory <= node.alloc_memory
        ):
            return ()
        return resources_fit(pod, node)
