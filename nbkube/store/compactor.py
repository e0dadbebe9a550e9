"""Periodic compaction of a store's history, as kube-apiserver compacts etcd.

Why: the store keeps every revision of every key (the SQLite log, etcd's MVCC history) so that a
watch can resume from where it was. Nothing needs revisions older than the slowest watcher, yet
without compaction the history only grows: at scale every pod's create, bind and status writes and
every Lease renewal stay, several times the size of what is live. `Compactor` compacts, every
`interval` seconds, up to the revision it saw at its previous tick, so history at least one
interval old goes and a watcher less than an interval behind never notices; one further behind is
told its revision was compacted and relists (Expired), as upstream's watchers are.
"""

from __future__ import annotations

import logging
import threading

from nbkube.clock import REAL_CLOCK, Clock
from nbkube.logutil import log_failure
from nbkube.store.base import Store

__all__ = ["Compactor", "COMPACT_INTERVAL"]

log = logging.getLogger(__name__)

COMPACT_INTERVAL = 60.0  # seconds (kube-apiserver's --etcd-compaction-interval is 5 minutes)


class Compactor:
    def __init__(self, store: Store, *, interval: float = COMPACT_INTERVAL, clock: Clock = REAL_CLOCK):
        if interval <= 0:
            raise ValueError(f"compaction interval must be > 0, got {interval!r}")
        self.store = store
        self.interval = interval
        self.clock = clock
        self._seen = 0  # the revision at the previous tick: the next compaction's target
        self._done = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> int:
        """Compact to the revision seen at the previous tick (if it moved); remember today's.
        Returns the revision compacted to (0 when nothing was)."""
        target, self._seen = self._seen, self.store.current_revision()
        if target <= self._done:
            return 0
        self.store.compact(target)
        self._done = target
        return target

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="store-compactor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        t, self._thread = self._thread, None
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5.0)

    def _run(self) -> None:
        while not self.clock.wait(self._stop, self.interval):
            try:
                self.tick()
            except Exception as exc:  # a store hiccup: the next tick tries again
                log_failure(log, "store compaction", exc)
