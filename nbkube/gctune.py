"""Garbage-collector thresholds for a process that holds a whole simulated cluster.

Why: CPython's cyclic collector promotes whatever survives two young collections, and runs a full
collection (a walk of every tracked object) once the promoted objects since the last one reach a
quarter of the old ones. A cluster's caches replace each object's decoded version at every write
(a pod is created, bound, given its status): with the default thresholds (700, 10, 10) those
versions live just long enough to be promoted, so full collections come every few seconds and each
walks the whole heap, hundreds of thousands of cached objects. The cost of an event then grows with
the objects held, as a scan would. Larger young generations let a replaced version die young, so
the heap is walked rarely; the objects held are JSON-shaped dicts and lists that make no cycles, so
nothing waits longer to be freed that would have been freed before. Applied by LocalCluster for
simulated nodes (the scale studies, `nbkube up --runtime sim`), and only over the defaults: a
process that chose its own thresholds keeps them.
"""

from __future__ import annotations

import gc

__all__ = ["SCALE_THRESHOLDS", "tune_for_scale"]

SCALE_THRESHOLDS = (50_000, 20, 100)
_DEFAULTS = (700, 10, 10)


def tune_for_scale() -> bool:
    """Raise the collector's thresholds to SCALE_THRESHOLDS if they are CPython's defaults;
    whether they were changed."""
    if gc.get_threshold() != _DEFAULTS:
        return False
    gc.set_threshold(*SCALE_THRESHOLDS)
    return True
