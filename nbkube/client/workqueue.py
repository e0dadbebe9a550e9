"""The work queue every controller pulls keys from, after client-go's rate-limited delaying queue.

Event handlers only `add(key)`; worker threads `get()` a key, reconcile it and call `done(key)`.
The queue guarantees what makes reconcile loops simple and safe:
- a key waiting in the queue is there once, however many times it was added (dedup);
- a key being processed is never handed to a second worker; if it is added meanwhile it is queued
  again when the first worker calls `done()`, so the latest change is never lost;
- `add_after` delays a key (a heap served by one timer thread that waits on the injected clock, so a
  FakeClock drives it in tests) and `add_rate_limited` delays it by base_delay * 2^failures,
  capped at max_delay, until `forget(key)`.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import deque

from nbkube.clock import REAL_CLOCK, Clock

__all__ = ["WorkQueue"]

_IDLE_WAIT = 3600.0  # timer wait with nothing scheduled; add_after wakes it early


class _DueEvent(threading.Event):
    """The timer's wake-up event: also "set" once the clock reaches the next scheduled time.

    Clock.wait polls `is_set()`; answering from the clock closes the window in which a FakeClock
    advance lands between the timer computing its delay and starting to wait (it would otherwise
    wait a whole extra delay of fake time)."""

    def __init__(self, queue: WorkQueue):
        super().__init__()
        self._queue = queue

    def is_set(self) -> bool:
        return super().is_set() or self._queue._next_due_reached()


class WorkQueue:
    def __init__(self, clock: Clock = REAL_CLOCK, base_delay: float = 0.005, max_delay: float = 30.0):
        self.clock = clock
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()  # keys that need processing (queued or re-added while processing)
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._shutdown = False
        # delayed adds: heap of (due monotonic time, seq, key); _due keeps each key's earliest time
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}
        self._seq = itertools.count()
        self._wake = _DueEvent(self)
        self._timer: threading.Thread | None = None

    # -- immediate adds --------------------------------------------------------------------------

    def add(self, key: str) -> None:
        with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: str) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # re-queued by done()
        self._queue.append(key)
        self._cond.notify()

    def get(self, timeout: float | None = None) -> str | None:
        """The next key to process (now owned by the caller until `done`), or None on timeout/shutdown."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._queue or self._shutdown, timeout):
                return None
            if self._shutdown:
                return None
            key = self._queue.popleft()
            self._dirty.discard(key)
            self._processing.add(key)
            return key

    def done(self, key: str) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty and not self._shutdown:
                self._queue.append(key)
                self._cond.notify()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    # -- delayed and rate-limited adds -------------------------------------------------------------

    def add_after(self, key: str, seconds: float) -> None:
        if seconds <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutdown:
                return
            due = self.clock.monotonic() + seconds
            if key in self._due and self._due[key] <= due:
                return  # already scheduled sooner
            self._due[key] = due
            heapq.heappush(self._heap, (due, next(self._seq), key))
            if self._timer is None:
                self._timer = threading.Thread(target=self._run_timer, name="workqueue-timer", daemon=True)
                self._timer.start()
        self._wake.set()

    def add_rate_limited(self, key: str) -> None:
        with self._cond:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        self.add_after(key, min(self.base_delay * (2**n), self.max_delay))

    def forget(self, key: str) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    def _next_due_reached(self) -> bool:
        # Called from inside Clock.wait (which may hold the clock's lock): taking self._cond here
        # would invert the queue->clock lock order of add_after, so read the heap head unlocked;
        # a stale read only causes a spurious wake-up, after which the timer re-checks under lock.
        try:
            due = self._heap[0][0]
        except IndexError:
            return False
        return due <= self.clock.monotonic()

    def _run_timer(self) -> None:
        while True:
            with self._cond:
                if self._shutdown:
                    return
                self._wake.clear()
                now = self.clock.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    due, _seq, key = heapq.heappop(self._heap)
                    if self._due.get(key) == due:
                        del self._due[key]
                        self._add_locked(key)
                delay = self._heap[0][0] - now if self._heap else _IDLE_WAIT
            self.clock.wait(self._wake, delay)

    # -- lifecycle -------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop handing out keys: every blocked and future `get` returns None; the timer exits."""
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()
            timer = self._timer
        self._wake.set()
        if timer is not None and timer is not threading.current_thread():
            timer.join(timeout=2.0)

    @property
    def shutting_down(self) -> bool:
        with self._cond:
            return self._shutdown
