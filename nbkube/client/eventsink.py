"""Batched Event writes: many components' Events created together, one store transaction a batch.

Why: every pod costs Events (SuccessfulCreate, Scheduled, Started, Ready), and written one by one
each is a registry create with its own transaction and lock: at thousands of pods a second, a
large share of the control plane's time. Upstream's event broadcaster likewise queues Events and
writes them from a goroutine of its own, apart from the controller that recorded them.

`batch_events(api)` gives an API (an in-process Registry with `create_many`) an `EventSink`:
`record_event` then queues its Event, and one flusher thread creates what is queued, up to
`BATCH` at a time, after at most `WINDOW` seconds, through `api.create_many` (each Event admitted
and written on its own terms, in one transaction). Recording stays best-effort, as it always was:
a failed batch or item is logged (one line with the cause), a full queue drops Events and says so.
`flush_events(api)` waits until what was queued before it is written (readers of the event log
call it); `stop_batching(api)` flushes and ends the thread. APIs without a sink (a RestClient, a
bare Registry in a unit test) keep writing each Event at once.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

from nbkube.api.meta import Obj
from nbkube.logutil import log_failure
from nbkube.perobject import PerObject

__all__ = ["EventSink", "batch_events", "flush_events", "stop_batching", "sink_for", "BATCH", "WINDOW"]

log = logging.getLogger(__name__)

BATCH = 128  # Events per create_many (the store's batch size)
WINDOW = 0.02  # seconds the first queued Event waits for others to share its transaction
MAX_QUEUED = 50_000  # beyond this Events are dropped (counted and logged), as a full broadcaster does


class EventSink:
    """A queue of Events and the thread that writes them in batches."""

    def __init__(self, api: Any, *, batch: int = BATCH, window: float = WINDOW, max_queued: int = MAX_QUEUED):
        self.api = api
        self.batch, self.window, self.max_queued = max(1, batch), window, max_queued
        self._cond = threading.Condition()
        self._queue: deque[Obj] = deque()
        self._queued = 0  # ever queued
        self._written = 0  # ever taken off the queue and written (or failed)
        self._dropped = 0
        self._stopping = False
        self._flushing = 0  # callers waiting in flush(): the next batch goes without its window
        self._thread = threading.Thread(target=self._run, name="event-sink", daemon=True)
        self._thread.start()

    def add(self, event: Obj) -> None:
        with self._cond:
            if not self._stopping:
                if len(self._queue) >= self.max_queued:
                    self._dropped += 1
                    return
                self._queue.append(event)
                self._queued += 1
                if len(self._queue) == 1 or len(self._queue) >= self.batch:
                    self._cond.notify_all()
                return
        _create_one(self.api, event)  # stopped: written at once, as without a sink

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every Event queued before this call is written; False on timeout."""
        with self._cond:
            target = self._queued
            self._flushing += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(
                    lambda: self._written >= target or not self._thread.is_alive(), timeout
                )
            finally:
                self._flushing -= 1

    def stop(self) -> None:
        self.flush()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=5.0)

    def _take(self) -> list[Obj]:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._queue and len(self._queue) < self.batch and not self._stopping and not self._flushing:
                # the first Event waits a moment for others; a full batch or a flush goes at once
                self._cond.wait_for(
                    lambda: len(self._queue) >= self.batch or self._stopping or self._flushing > 0,
                    self.window,
                )
            n = min(self.batch, len(self._queue))
            return [self._queue.popleft() for _ in range(n)]

    def _run(self) -> None:
        while True:
            events = self._take()
            if not events:
                with self._cond:
                    if self._stopping:
                        return
                continue
            self._write(events)
            with self._cond:
                dropped, self._dropped = self._dropped, 0
            if dropped:  # said before flush() returns, so a caller that flushed has seen the line
                log.warning(
                    "event sink: %d Events dropped: more than %d were waiting", dropped, self.max_queued
                )
            with self._cond:
                self._written += len(events)
                self._cond.notify_all()

    def _write(self, events: list[Obj]) -> None:
        try:
            results = self.api.create_many(events)
        except Exception as exc:  # the store is unavailable: these are lost, as a failed create's
            log_failure(log, "recording events", exc, detail=f"{len(events)} events")
            return
        for event, result in zip(events, results, strict=True):
            if isinstance(result, Exception):
                log_failure(log, "recording an event", result, detail=_about(event))


def _about(event: Obj) -> str:
    inv = event.get("involvedObject") or {}
    return f"{event.get('reason')} for {inv.get('kind')} {inv.get('name')}"


def _create_one(api: Any, event: Obj) -> None:
    try:
        api.create(event)
    except Exception as exc:
        log_failure(log, "recording an event", exc, detail=_about(event))


_sinks: PerObject[Any, EventSink] = PerObject(EventSink)


def batch_events(api: Any) -> EventSink | None:
    """Give `api` a batching EventSink (the existing one when it has one); None when `api` cannot
    create in batches (no `create_many`)."""
    if not callable(getattr(api, "create_many", None)):
        return None
    return _sinks.get(api)


def sink_for(api: Any) -> EventSink | None:
    return _sinks.peek(api)


def flush_events(api: Any, timeout: float = 10.0) -> None:
    sink = sink_for(api)
    if sink is not None:
        sink.flush(timeout)


def stop_batching(api: Any) -> None:
    """Write what is queued and go back to one create per Event."""
    sink = _sinks.pop(api)
    if sink is not None:
        sink.stop()
