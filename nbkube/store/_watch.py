"""A queue-backed `Watch` shared by both store backends.

Each backend has a producer (the SQLite poller thread, or an etcd gRPC stream reader) that turns
backend rows/responses into `WatchEvent`s and pushes them here; consumers (informers, the
registry's watch) pull with `next(timeout)` or iterate. An error pushed by the producer (for
example `Compacted` or `StoreUnavailable`) is raised once to the consumer, which then must relist.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

from nbkube.store.base import WatchEvent

# Marks the end of the stream; put back after being read so that every later call also sees it.
_END = object()


class QueueWatch:
    """A `Watch` fed by a backend producer through `push`, `fail` and `close_stream`."""

    def __init__(
        self, prefix: str, after_revision: int, on_cancel: Callable[[QueueWatch], None] | None = None
    ):
        self.prefix = prefix
        # The lowest revision still delivered: above the one the caller asked to start after (the
        # producer may race ahead of it, and filtering here keeps that harmless), then the last one
        # delivered, not above it: an etcd txn that writes a batch gives all its keys one revision.
        self.min_revision = after_revision + 1
        self._q: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._on_cancel = on_cancel
        self._done = threading.Event()
        self._wakeup: Callable[[], None] | None = None

    def set_wakeup(self, callback: Callable[[], None] | None) -> None:
        self._wakeup = callback
        if callback is not None and (self._done.is_set() or not self._q.empty()):
            callback()  # something arrived before the consumer asked to be woken

    # --- producer side -------------------------------------------------------------------------

    def push(self, event: WatchEvent) -> None:
        if self._done.is_set() or event.revision < self.min_revision:
            return
        self.min_revision = event.revision
        self._q.put(event)
        self._wake()

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None:
            wakeup()

    def fail(self, error: Exception) -> None:
        """Deliver `error` to the consumer, then end the stream."""
        if self._done.is_set():
            return
        self._done.set()
        self._q.put(error)
        self._q.put(_END)
        self._wake()

    def close_stream(self) -> None:
        if self._done.is_set():
            return
        self._done.set()
        self._q.put(_END)
        self._wake()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    # --- consumer side -------------------------------------------------------------------------

    def next(self, timeout: float | None = None) -> WatchEvent | None:
        try:
            item = self._q.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            self._q.put(_END)
            return None
        if isinstance(item, Exception):
            raise item
        assert isinstance(item, WatchEvent)
        return item

    def __iter__(self) -> Iterator[WatchEvent]:
        while True:
            event = self.next(None)
            if event is None:
                return
            yield event

    def cancel(self) -> None:
        self.close_stream()
        if self._on_cancel is not None:
            # Idempotent on the producer side; called even after `fail` so it can forget us.
            self._on_cancel(self)
