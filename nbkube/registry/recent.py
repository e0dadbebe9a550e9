"""The values a registry wrote or watched last, by key and revision: an update's read of the
stored object without a store round trip.

Why: every update and status update reads the stored object first (its spec to keep, its status
to keep, the fields a write may not change). Most writers update what they just saw: the scheduler
binds the pod the ReplicaSet controller created, the node agent writes the status of the pod the
scheduler bound, a node renews the Lease it renewed last time. With thousands of nodes and pods
those reads were a fifth of the control plane's time (a store read and a decode each). When the
writer before was another process (a scheduler or sim nodes in processes of their own), the value
comes from this registry's watches, which deliver every write with its revision.

Why it is always right: a key's value at one revision never changes (revisions are the store's,
unique and never reused), so a remembered (key, revision) is the stored value at that revision.
It is used only when the writer names that revision (its resourceVersion); the write itself is
still the store's compare-and-swap on it, so a writer whose revision is no longer the newest
(another process wrote since) gets the same Conflict, and a deleted object the same NotFound, as
after a read. Only plain JSON values are kept (never an encrypted Secret's value), a bounded number
(the least recently written go first).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from nbkube.store.base import KeyValue

__all__ = ["RecentValues", "CAPACITY"]

CAPACITY = 32_768  # keys: the Leases of 5,000 nodes and the pods in flight between writers


class RecentValues:
    """key -> the value written last under it, with its revisions (thread-safe, bounded)."""

    def __init__(self, capacity: int = CAPACITY):
        self.capacity = max(1, capacity)
        self._lock = threading.Lock()
        self._values: OrderedDict[str, KeyValue] = OrderedDict()

    def remember(self, key: str, value: bytes, create_revision: int, mod_revision: int) -> None:
        if value[:1] != b"{":  # a transformed (encrypted) value: never kept in the clear here
            return
        with self._lock:
            self._keep(KeyValue(key, value, create_revision, mod_revision))

    def remember_seen(self, kv: KeyValue) -> None:
        """Keep a value a watch delivered, unless one as new is kept: another process's write (the
        scheduler's bind, the node's status) is then the next writer's starting point as well.
        An older revision never replaces a newer one (a watch may deliver this registry's own
        write after a later one), and the echo of a kept write changes nothing."""
        if kv.value[:1] != b"{":
            return
        with self._lock:
            kept = self._values.get(kv.key)
            if kept is None or kept.mod_revision < kv.mod_revision:
                self._keep(kv)

    def _keep(self, kv: KeyValue) -> None:
        """Keep `kv` as its key's newest, the least recently kept key going past capacity (under
        the lock)."""
        self._values[kv.key] = kv
        self._values.move_to_end(kv.key)
        if len(self._values) > self.capacity:
            self._values.popitem(last=False)

    def at(self, key: str, revision: int) -> KeyValue | None:
        """The value of `key` at `revision` if it is the one remembered, else None."""
        with self._lock:
            kv = self._values.get(key)
            return kv if kv is not None and kv.mod_revision == revision else None

    def forget(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)
