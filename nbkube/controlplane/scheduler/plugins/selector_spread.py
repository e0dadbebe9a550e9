"""Score SelectorSpread: spread the replicas of one controller, or the pods of one Service.

Why: replicas on different nodes survive a node failure (the article's 5 pods on 3 nodes: 2/2/1).
A pod's spread keys are its controller owner and the Services whose selector matches it
(Snapshot keeps per-node counters of these keys); fewer matching pods on a node = higher score,
normalised as upstream: MAX * (max_count - count) / max_count.
"""

from __future__ import annotations

from collections.abc import Sequence

from nbkube.controlplane.scheduler.framework import MAX_NODE_SCORE, NodeInfo, PodInfo


def spread_count(pod: PodInfo, node: NodeInfo) -> int:
    """How many pods on `node` share a controller or Service with `pod`."""
    counts = node.spread_counts
    if not counts:
        return 0
    return sum(counts.get(k, 0) for k in pod.spread_keys)


def normalize_spread(counts: list[float]) -> list[float]:
    top = max(counts, default=0)
    if top <= 0:
        return [float(MAX_NODE_SCORE)] * len(counts)
    return [MAX_NODE_SCORE * (top - c) / top for c in counts]


class SelectorSpread:
    name = "SelectorSpread"

    def __init__(self, weight: int = 2):
        self.weight = weight

    def score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[float]:
        keys = pod.spread_keys
        if not keys:
            return [0.0] * len(nodes)
        if len(keys) == 1:
            (k,) = keys
            return [n.spread_counts.get(k, 0) for n in nodes]
        return [spread_count(pod, n) for n in nodes]

    def normalize(self, pod: PodInfo, scores: list[float]) -> list[float]:
        return normalize_spread(scores)
