"""A tiny in-memory Store used by the registry and client tests when no real backend is wanted.

It follows `nbkube.store.base.Store` (revisions, CAS, watch from a revision, compaction) closely
enough for the layers above; the real backends have their own contract suite in tests/store/.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from nbkube.store.base import Compacted, KeyExists, KeyNotFound, KeyValue, RevisionMismatch, WatchEvent


class MemWatch:
    def __init__(self, store: MemStore, prefix: str, after: int):
        self._store = store
        self._prefix = prefix
        self._pos = after
        self._cancelled = False

    def next(self, timeout: float | None = None) -> WatchEvent | None:
        with self._store._cond:
            while not self._cancelled:
                for ev in self._store._log:
                    if ev.revision > self._pos and ev.kv.key.startswith(self._prefix):
                        self._pos = ev.revision
                        return ev
                if self._store._log:
                    self._pos = max(self._pos, self._store._log[-1].revision)
                if not self._store._cond.wait(timeout):
                    return None
            return None

    def __iter__(self) -> Iterator[WatchEvent]:
        while not self._cancelled:
            ev = self.next(0.1)
            if ev is not None:
                yield ev

    def cancel(self) -> None:
        with self._store._cond:
            self._cancelled = True
            self._store._cond.notify_all()


class MemStore:
    url = "mem://"

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._data: dict[str, KeyValue] = {}
        self._log: list[WatchEvent] = []
        self._rev = 1
        self._compacted = 0

    def get(self, key: str) -> KeyValue | None:
        with self._cond:
            return self._data.get(key)

    def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        with self._cond:
            return [self._data[k] for k in sorted(self._data) if k.startswith(prefix)], self._rev

    def _put(self, ev: WatchEvent) -> int:
        self._log.append(ev)
        self._cond.notify_all()
        return self._rev

    def create(self, key: str, value: bytes) -> int:
        with self._cond:
            if key in self._data:
                raise KeyExists(key)
            self._rev += 1
            kv = KeyValue(key, value, self._rev, self._rev)
            self._data[key] = kv
            return self._put(WatchEvent("PUT", kv))

    def update(self, key: str, value: bytes, expected_mod_revision: int) -> int:
        with self._cond:
            old = self._data.get(key)
            if old is None:
                raise KeyNotFound(key)
            if old.mod_revision != expected_mod_revision:
                raise RevisionMismatch(key, expected_mod_revision, old.mod_revision)
            self._rev += 1
            kv = KeyValue(key, value, old.create_revision, self._rev)
            self._data[key] = kv
            return self._put(WatchEvent("PUT", kv, old))

    def delete(self, key: str, expected_mod_revision: int | None = None) -> int:
        with self._cond:
            old = self._data.get(key)
            if old is None:
                raise KeyNotFound(key)
            if expected_mod_revision is not None and old.mod_revision != expected_mod_revision:
                raise RevisionMismatch(key, expected_mod_revision, old.mod_revision)
            self._rev += 1
            del self._data[key]
            return self._put(
                WatchEvent("DELETE", KeyValue(key, old.value, old.create_revision, self._rev), old)
            )

    def watch(self, prefix: str, after_revision: int) -> MemWatch:
        with self._cond:
            if after_revision + 1 < self._compacted:
                raise Compacted(after_revision, self._compacted)
            return MemWatch(self, prefix, after_revision)

    def current_revision(self) -> int:
        with self._cond:
            return self._rev

    def compact(self, revision: int) -> None:
        with self._cond:
            self._compacted = max(self._compacted, revision)
            self._log = [e for e in self._log if e.revision >= revision]

    def close(self) -> None:
        pass


def make_store() -> object:
    """The store the registry/client tests run on: SQLite in memory once that backend exists."""
    try:
        from nbkube.store import open_store  # type: ignore[attr-defined]
    except ImportError:
        return MemStore()
    return open_store("sqlite://:memory:")
