"""The Store seam: a revisioned key-value space with watch, the one thing the registry needs.

Modelled on etcd v3 (and k3s's kine): every write gets a new, cluster-wide, strictly increasing
revision; each key remembers the revision that created it and the one that last modified it; writes
can be guarded by the modification revision the writer last saw (compare-and-swap); and a watch can
resume from any revision that has not been compacted away. Both backends (`sqlite.py`, `etcd.py`)
implement this Protocol and pass the same contract suite in `tests/store/`.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from nbkube.errors import NbkubeError, StoreUnavailable

__all__ = [
    "KeyValue",
    "BatchWrite",
    "MAX_BATCH",
    "WatchEvent",
    "Watch",
    "Store",
    "StoreError",
    "KeyExists",
    "KeyNotFound",
    "RevisionMismatch",
    "Compacted",
    "StoreUnavailable",
    "MAX_VALUE_BYTES",
]

# etcd's default request limit is 1.5 MiB; Kubernetes objects are bounded by it, and so are ours.
MAX_VALUE_BYTES = 3 * 512 * 1024


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True)
class BatchWrite:
    """One write of a batch: a create (`expected_mod_revision` None) or a compare-and-swap update."""

    key: str
    value: bytes
    expected_mod_revision: int | None = None

# items per transaction (etcd refuses a txn of more than its --max-txn-ops, 128 by default)
MAX_BATCH = 128


@dataclass(frozen=True)
class WatchEvent:
    """One change. For DELETE, `kv.value` is the last value before deletion and `kv.mod_revision`
    is the revision of the deletion itself (so the stream's revisions always increase)."""

    type: Literal["PUT", "DELETE"]
    kv: KeyValue
    prev: KeyValue | None = None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


class StoreError(NbkubeError):
    """A store precondition failed; the registry turns these into API errors."""


class KeyExists(StoreError):
    reason = "AlreadyExists"
    code = 409


class KeyNotFound(StoreError):
    reason = "NotFound"
    code = 404


class RevisionMismatch(StoreError):
    """The key's mod_revision was not the expected one (someone else wrote it first)."""

    reason = "Conflict"
    code = 409

    def __init__(self, key: str, expected: int, actual: int | None):
        self.key = key
        self.expected = expected
        self.actual = actual
        super().__init__(f"{key}: expected mod revision {expected}, found {actual}")


class Compacted(StoreError):
    """The requested revision is older than the store's compaction point."""

    reason = "Expired"
    code = 410

    def __init__(self, requested: int, compacted: int):
        self.requested = requested
        self.compacted = compacted
        super().__init__(
            f"revision {requested} has been compacted (oldest available is {compacted}): relist and watch again"
        )


class Watch(Protocol):
    """A live stream of events under one prefix. Iterating blocks until the next event or `cancel()`."""

    def __iter__(self) -> Iterator[WatchEvent]: ...

    def next(self, timeout: float | None = None) -> WatchEvent | None:
        """The next event, or None when `timeout` seconds pass with none (or the watch is cancelled)."""
        ...

    def cancel(self) -> None: ...

    def set_wakeup(self, callback: Callable[[], None] | None) -> None:
        """Call `callback` (from the producer's thread) whenever `next` has something new to return
        (an event, an error or the end), so an event loop can wait for a watch without a thread."""
        ...


class Store(Protocol):
    url: str

    def get(self, key: str) -> KeyValue | None: ...

    def list(
        self, prefix: str, *, revision: int | None = None, start: str = "", limit: int = 0
    ) -> tuple[builtins.list[KeyValue], int]:
        """All live keys under `prefix`, sorted by key, and the revision the read reflects.

        With `revision`, the keys as they were at that past revision (what a paginated list reads
        for each of its pages, so that they make one consistent snapshot): Compacted once history
        before it was compacted away, BadRequest for a revision the store has not reached.
        `start`: only keys >= it (a whole key); `limit`: at most that many keys (0: all). A page of
        a large list reads that page, not the whole prefix."""
        ...

    def count(self, prefix: str, *, revision: int | None = None, start: str = "") -> int:
        """How many live keys `list` with the same arguments would return (no values read)."""
        ...

    def create(self, key: str, value: bytes) -> int:
        """Write a key that must not exist (KeyExists otherwise); returns the new revision."""
        ...

    def update(self, key: str, value: bytes, expected_mod_revision: int) -> int:
        """Overwrite a key whose mod_revision must equal `expected_mod_revision`.
        KeyNotFound if absent, RevisionMismatch if changed; returns the new revision."""
        ...

    def write_batch(self, writes: Sequence[BatchWrite]) -> builtins.list[int | StoreError]:
        """Many creates and updates in one transaction (up to MAX_BATCH; more are split), each with
        its own precondition as `create`/`update` have, failing on its own: the result says, per
        item, its new revision or the StoreError it would have raised; the others are written.
        What is Unavailable for one (the store is down) raises for all. Keys must be distinct."""
        ...

    def delete(self, key: str, expected_mod_revision: int | None = None) -> int:
        """Delete a key (guarded when `expected_mod_revision` is given); returns the revision of the
        deletion. KeyNotFound if absent, RevisionMismatch if changed."""
        ...

    def watch(self, prefix: str, after_revision: int) -> Watch:
        """Events under `prefix` with revision > `after_revision`, in revision order, then live ones.
        The items of one `write_batch` transaction may share its revision (etcd's): all are delivered.
        Raises Compacted when some of those events were compacted away (`after_revision + 1` is older
        than the compaction revision); `after_revision=current_revision()` means "from now"."""
        ...

    def current_revision(self) -> int: ...

    def compact(self, revision: int) -> None:
        """Forget history older than `revision`, as etcd does: the latest value of every live key
        stays, and watches may still start from `revision - 1` onwards."""
        ...

    def close(self) -> None: ...
