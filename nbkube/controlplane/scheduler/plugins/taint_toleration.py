"""Filter TaintToleration: a node's NoSchedule/NoExecute taints must each be tolerated by the pod.

Why: taints keep ordinary pods off special or failing nodes (the node-lifecycle controller taints
NotReady/unreachable nodes). `tolerates` is shared with the readiness filter (cordon toleration)
and is what the node-lifecycle controller's eviction logic means by "tolerated" too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nbkube.controlplane.scheduler.framework import NodeInfo, PodInfo

HARD_EFFECTS = frozenset({"NoSchedule", "NoExecute"})

Taint = tuple[str, str, str]  # (key, value, effect)


def toleration_matches(tol: Mapping[str, Any], taint: Taint) -> bool:
    """Kubernetes' ToleratesTaint: effect (empty = any), key (empty with Exists = any), value."""
    key, value, effect = taint
    tol_effect = tol.get("effect") or ""
    if tol_effect and tol_effect != effect:
        return False
    tol_key = tol.get("key") or ""
    op = tol.get("operator") or "Equal"
    if tol_key and tol_key != key:
        return False
    if op == "Exists":
        return True
    if not tol_key:
        return False  # an Equal toleration needs a key
    return str(tol.get("value") or "") == value


def tolerates(tolerations: Sequence[Mapping[str, Any]], taint: Taint) -> bool:
    return any(toleration_matches(t, taint) for t in tolerations)


def untolerated_taint(tolerations: Sequence[Mapping[str, Any]], taints: Sequence[Taint]) -> Taint | None:
    """The first NoSchedule/NoExecute taint none of the tolerations covers, or None."""
    for taint in taints:
        if taint[2] in HARD_EFFECTS and not tolerates(tolerations, taint):
            return taint
    return None


def taint_toleration(pod: PodInfo, node: NodeInfo) -> list[str]:
    taint = untolerated_taint(pod.tolerations, node.taints)
    if taint is None:
        return []
    return [f"node(s) had untolerated taint {{{taint[0]}: {taint[1]}}}"]


class TaintToleration:
    name = "TaintToleration"
    static = True

    def applies(self, pod: PodInfo) -> bool:
        return True

    def filter(self, pod: PodInfo, node: NodeInfo) -> Sequence[str]:
        if not node.taints:
            return ()
        return taint_toleration(pod, node)
