"""The shape every node-side sync loop shares: a dirty flag, one thread, back-off, "synced" waits.

Why: the service proxy runner and the firewall runner both turn informer events into one sync per
burst of changes, as kube-proxy's loop does: handlers only `mark()`, one thread calls the sync,
a failed sync is retried with exponential back-off (never dropped), and tests and benchmarks wait
for `wait_synced()`. What differs (which informers, what a sync computes, what runs while idle)
stays in the subclasses; the thread, the flag, the back-off and the bookkeeping live here once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from nbkube.logutil import log_failure

__all__ = ["RETRY_MAX", "RETRY_START", "SyncLoop"]

RETRY_START = 0.1  # seconds before the first retry of a failed sync
RETRY_MAX = 5.0  # the back-off's ceiling


class SyncLoop:
    """Base of a runner whose thread (`_run`, written by the subclass) syncs after each `mark()`."""

    def __init__(self, name: str) -> None:
        self._loop_name = name
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self._delay = RETRY_START
        self.syncs = 0  # completed syncs, for tests and benchmarks
        self.last_error = ""

    def mark(self) -> None:
        """Something changed: the thread syncs again (once, however many marks come meanwhile)."""
        self._dirty.set()

    def _start_thread(self, run: Callable[[], None]) -> None:
        self._stop.clear()
        self._dirty.set()  # the first sync happens without waiting for a change
        self._thread = threading.Thread(target=run, name=f"nbkube-{self._loop_name}", daemon=True)
        self._thread.start()

    def _stop_thread(self) -> None:
        self._stop.set()
        self._dirty.set()  # wakes the thread so it sees the stop
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def wait_synced(self, timeout: float = 10.0) -> bool:
        """Wait until the latest change has been applied (no sync pending or running)."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._dirty.is_set() and self.syncs > 0, timeout)

    def _synced(self) -> None:
        """Record a successful sync: clears the error, resets the back-off, wakes waiters."""
        self.last_error = ""
        self._delay = RETRY_START
        with self._idle:
            self.syncs += 1
            self._idle.notify_all()

    def _failed(self, exc: Exception, log: logging.Logger, what: str) -> None:
        """Record a failed sync and wait out the back-off; the flag stays set, so it is retried."""
        self.last_error = str(exc)
        log_failure(log, what, exc, detail=f"retrying in {self._delay:.1f}s")
        self._dirty.set()
        self._stop.wait(self._delay)
        self._delay = min(self._delay * 2, RETRY_MAX)
