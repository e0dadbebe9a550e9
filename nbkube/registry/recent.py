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

Why a watched value no newer than one already let go is not kept: a watch that falls behind (a
busy process: thousands of pods a second) delivers values the registry wrote, kept, and let go
long ago. Keeping them again would push out the values writers are about to name, whose updates
would then read the store, making the process busier and its watches later still.

Why no lock: every watch thread tells each event here, and every writer asks here first. Under a
lock they queued on it: a thread preempted while holding it (the interpreter switches threads
every few milliseconds) held up all the others until it ran again, and with a process's dozens of
threads those waits took most of its time. Each dict operation here is atomic under the
interpreter lock, and a race can only lose a remembered value (its key's next update reads the
store), never give a wrong one: what is kept under (key, revision) is the stored value at that
revision whoever kept it, and the store's compare-and-swap still decides every write.
"""

from __future__ import annotations

from collections import OrderedDict

from nbkube.store.base import KeyValue

__all__ = ["RecentValues", "CAPACITY"]

CAPACITY = 32_768  # keys: the Leases of 5,000 nodes and the pods in flight between writers


class RecentValues:
    """key -> the value written last under it, with its revisions (thread-safe without a lock,
    see above; bounded)."""

    def __init__(self, capacity: int = CAPACITY):
        self.capacity = max(1, capacity)
        self._values: OrderedDict[str, KeyValue] = OrderedDict()
        # the newest revision let go past capacity: a watched value no newer is not kept again
        self._dropped_revision = 0

    def remember(self, key: str, value: bytes, create_revision: int, mod_revision: int) -> None:
        if value[:1] != b"{":  # a transformed (encrypted) value: never kept in the clear here
            return
        self._keep(KeyValue(key, value, create_revision, mod_revision))

    def remember_seen(self, kv: KeyValue) -> None:
        """Keep a value a watch delivered, unless one as new is kept: another process's write (the
        scheduler's bind, the node's status) is then the next writer's starting point as well.
        An older revision never replaces a newer one (a watch may deliver this registry's own
        write after a later one), and the echo of a kept write changes nothing. A value no newer
        than one let go past capacity comes from a watch that fell behind, and is not kept (see
        the module docstring)."""
        if kv.value[:1] != b"{" or kv.mod_revision <= self._dropped_revision:
            return
        kept = self._values.get(kv.key)
        if kept is None or kept.mod_revision < kv.mod_revision:
            # a copy: the watched KeyValue may carry its decoded object (SharedDecoder)
            self._keep(KeyValue(kv.key, kv.value, kv.create_revision, kv.mod_revision))

    def _keep(self, kv: KeyValue) -> None:
        """Keep `kv` as its key's newest, the least recently kept keys going past capacity."""
        values = self._values
        values[kv.key] = kv
        try:
            values.move_to_end(kv.key)
        except KeyError:  # another thread's eviction took it meanwhile: it is simply not kept
            return
        while len(values) > self.capacity:
            try:
                _, dropped = values.popitem(last=False)
            except KeyError:  # emptied by other threads meanwhile
                return
            if dropped.mod_revision > self._dropped_revision:
                self._dropped_revision = dropped.mod_revision

    def at(self, key: str, revision: int) -> KeyValue | None:
        """The value of `key` at `revision` if it is the one remembered, else None."""
        kv = self._values.get(key)
        return kv if kv is not None and kv.mod_revision == revision else None

    def forget(self, key: str) -> None:
        self._values.pop(key, None)

    def __len__(self) -> int:
        return len(self._values)
