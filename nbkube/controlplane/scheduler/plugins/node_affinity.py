"""Filter NodeAffinity: `spec.nodeSelector` and required node affinity must match the node.

Why: users pin pods to node classes by label (`disktype: ssd`) or by expressions
(`In/NotIn/Exists/DoesNotExist/Gt/Lt` on labels, `In/NotIn` on `metadata.name` via matchFields).
Terms of nodeSelectorTerms are ORed, expressions in a term ANDed; an empty term list or a term
with no expressions matches no node, as in Kubernetes. Static filter (node labels only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nbkube.controlplane.scheduler.framework import NodeInfo, PodInfo

MSG_AFFINITY = "node(s) didn't match Pod's node affinity/selector"


def _as_int(text: Any) -> int | None:
    try:
        return int(str(text))
    except ValueError:
        return None


def expression_matches(expr: Mapping[str, Any], values_of: Mapping[str, str]) -> bool:
    """One NodeSelectorRequirement against a node's labels (or fields, for matchFields)."""
    key = str(expr.get("key") or "")
    op = expr.get("operator") or ""
    values = [str(v) for v in expr.get("values") or ()]
    has = key in values_of
    if op == "In":
        return has and values_of[key] in values
    if op == "NotIn":
        return not has or values_of[key] not in values
    if op == "Exists":
        return has
    if op == "DoesNotExist":
        return not has
    if op in ("Gt", "Lt"):
        if not has or len(values) != 1:
            return False
        mine, theirs = _as_int(values_of[key]), _as_int(values[0])
        if mine is None or theirs is None:
            return False
        return mine > theirs if op == "Gt" else mine < theirs
    return False  # unknown operators never match (validation rejects them earlier)


def term_matches(term: Mapping[str, Any], labels: Mapping[str, str], node_name: str) -> bool:
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    field_values = {"metadata.name": node_name}
    return all(expression_matches(e, labels) for e in exprs) and all(
        expression_matches(f, field_values) for f in fields
    )


def matches_node(
    node_selector: Mapping[str, str],
    required_terms: Sequence[Mapping[str, Any]] | None,
    labels: Mapping[str, str],
    node_name: str,
) -> bool:
    for k, v in node_selector.items():
        if labels.get(k) != v:
            return False
    if required_terms is None:
        return True
    return any(term_matches(t, labels, node_name) for t in required_terms)


def node_affinity(pod: PodInfo, node: NodeInfo) -> list[str]:
    if matches_node(pod.node_selector, pod.required_terms, node.labels, node.name):
        return []
    return [MSG_AFFINITY]


class NodeAffinity:
    name = "NodeAffinity"
    static = True

    def applies(self, pod: PodInfo) -> bool:
        return bool(pod.node_selector) or pod.required_terms is not None

    def filter(self, pod: PodInfo, node: NodeInfo) -> Sequence[str]:
        return node_affinity(pod, node)
