"""Score LeastAllocated: prefer the node with the most free cpu and memory after placing the pod.

Why: balancing load keeps headroom on every node. Score per resource is
(allocatable - requested) * 100 / allocatable, averaged over cpu and memory, with upstream's
non-zero defaults for pods that request nothing (so best-effort pods spread too).
"""

from __future__ import annotations

from collections.abc import Sequence

from nbkube.controlplane.scheduler.framework import MAX_NODE_SCORE, NodeInfo, PodInfo


def least_allocated(pod: PodInfo, node: NodeInfo) -> float:
    total = 0.0
    if node.alloc_cpu > 0:
        free = node.alloc_cpu - node.nonzero_cpu - pod.nonzero_cpu
        total += max(0, free) * MAX_NODE_SCORE / node.alloc_cpu
    if node.alloc_memory > 0:
        free = node.alloc_memory - node.nonzero_memory - pod.nonzero_memory
        total += max(0, free) * MAX_NODE_SCORE / node.alloc_memory
    return total / 2


class LeastAllocated:
    name = "LeastAllocated"

    def __init__(self, weight: int = 1):
        self.weight = weight

    def score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[float]:
        # least_allocated inlined over the batch (this runs for every sampled node of every pod);
        # a free amount > 0 implies allocatable > 0, so the divisions are safe.
        cpu, mem, half = pod.nonzero_cpu, pod.nonzero_memory, MAX_NODE_SCORE / 2
        return [
            (
                (fc / n.alloc_cpu if (fc := n.alloc_cpu - n.nonzero_cpu - cpu) > 0 else 0.0)
                + (fm / n.alloc_memory if (fm := n.alloc_memory - n.nonzero_memory - mem) > 0 else 0.0)
            )
            * half
            for n in nodes
        ]

    def normalize(self, pod: PodInfo, scores: list[float]) -> list[float]:
        return scores  # already 0..100
