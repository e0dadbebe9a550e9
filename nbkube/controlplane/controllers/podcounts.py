"""Per-owner pod counts kept current from the pod informer's events, instead of recounted per sync.

Why: the ReplicaSet/RC and Deployment controllers sync an owner every time one of its pods moves
(coalesced, see client/controller.py), and a sync that walks every pod of the owner to count the
live and the Ready ones costs O(pods): over a rollout of N pods that is O(N^2), and it is what
made the pod rate fall as pods accumulated. As upstream keeps its informer caches indexed so that
a sync reads rather than scans, `PodCounts` keeps, for each controlling owner (namespace and
controller uid), what those syncs read:

- the label sets of the pods it controls (all of them, and the active ones apart), each with how
  many pods carry it: the pods of one template share one label set, so checking the owner's
  selector against each set (a claim: does any owned pod no longer match?) costs the number of
  distinct sets, not of pods;
- how many of its active pods are Ready.

Counts change in the informer's handlers, in the order of the cache's changes, so they always
describe the cache as it is (or as it was a handler call ago, as any cache read does). Counts say
nothing about time: `minReadySeconds` (a pod turning available without an event) still needs the
pods themselves, and the controllers read them then (docs/architecture.md, "Controllers and the
scheduler").
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nbkube.api.meta import Obj, controller_of
from nbkube.controlplane.controllers.replication import is_active, is_ready
from nbkube.perobject import PerObject

if TYPE_CHECKING:
    from nbkube.api.selectors import Selector
    from nbkube.client.informer import Informer

__all__ = ["PodCounts", "Tally", "pod_counts"]

LabelSet = frozenset[tuple[str, str]]
# (owner key, label set, active, ready) of one controlled pod
Entry = tuple[tuple[str, str], LabelSet, bool, bool]


@dataclass
class Tally:
    """What one owner's pods add up to (a snapshot: callers get a copy)."""

    labelsets: Counter[LabelSet] = field(default_factory=Counter)  # every controlled pod
    active_labelsets: Counter[LabelSet] = field(default_factory=Counter)  # the active ones
    ready: int = 0  # active and Ready

    @property
    def pods(self) -> int:
        return sum(self.labelsets.values())

    @property
    def active(self) -> int:
        return sum(self.active_labelsets.values())

    def all_match(self, selector: Selector) -> bool:
        """Every controlled pod's labels match `selector` (nothing to release)."""
        return all(selector.matches(dict(ls)) for ls in self.labelsets)

    def fully_labeled(self, template_labels: Mapping[str, str]) -> int:
        """Active pods carrying every label of the template (a ReplicaSet's fullyLabeledReplicas)."""
        want = set(template_labels.items())
        return sum(n for ls, n in self.active_labelsets.items() if want <= ls)

    def copy(self) -> Tally:
        return Tally(Counter(self.labelsets), Counter(self.active_labelsets), self.ready)


def _entry(pod: Obj) -> Entry | None:
    """(owner key, label set, active, ready) of a controlled pod; None for an orphan."""
    ref = controller_of(pod)
    uid = ref.get("uid") if ref is not None else None
    if not uid:
        return None
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    active = is_active(pod)
    return (
        (str(meta.get("namespace") or "default"), str(uid)),
        frozenset((str(k), str(v)) for k, v in labels.items()),
        active,
        active and is_ready(pod),
    )


class PodCounts:
    """Counts of the pods of every controlling owner, fed by one pod informer's handlers."""

    def __init__(self, pods: Informer):
        self._lock = threading.Lock()
        self._by_owner: dict[tuple[str, str], Tally] = {}
        pods.add_handler(on_add=self._add, on_update=self._update, on_delete=self._delete)

    def tally(self, namespace: str, uid: str) -> Tally:
        """The counts of the pods controlled by the owner `uid` in `namespace` (a copy)."""
        with self._lock:
            t = self._by_owner.get((namespace or "default", uid))
            return t.copy() if t is not None else Tally()

    def _apply(self, e: Entry | None, sign: int) -> None:
        if e is None:
            return
        owner, labelset, active, ready = e
        t = self._by_owner.get(owner)
        if t is None:
            if sign < 0:
                return
            t = self._by_owner[owner] = Tally()
        _bump(t.labelsets, labelset, sign)
        if active:
            _bump(t.active_labelsets, labelset, sign)
        t.ready += sign if ready else 0
        if not t.labelsets:
            del self._by_owner[owner]

    def _add(self, pod: Obj) -> None:
        e = _entry(pod)
        with self._lock:
            self._apply(e, 1)

    def _update(self, old: Obj, new: Obj) -> None:
        before, after = _entry(old), _entry(new)
        if before == after:
            return  # most updates (a bind, a status write that leaves Ready as it was) move no count
        with self._lock:
            self._apply(before, -1)
            self._apply(after, 1)

    def _delete(self, pod: Obj) -> None:
        e = _entry(pod)
        with self._lock:
            self._apply(e, -1)


def _bump(counter: Counter[LabelSet], key: LabelSet, sign: int) -> None:
    n = counter[key] + sign
    if n > 0:
        counter[key] = n
    else:
        del counter[key]


_shared: PerObject[Informer, PodCounts] = PerObject(PodCounts)


def pod_counts(pods: Informer) -> PodCounts:
    """The one PodCounts of a pod informer (the controllers that share the informer share it)."""
    return _shared.get(pods)
