"""The base of every reconcile loop (replication, deployment, endpoints, node lifecycle, ...).

A controller = informer cache + work queue + `reconcile(key)`, as docs/architecture.md describes. Subclasses
register informer handlers in `__init__` that only enqueue keys (`self.enqueue(obj)`), and
implement `reconcile(key)`: read the cache, compare desired with observed, write with the
resourceVersion read, and be safe to run again. This base runs the worker threads: a reconcile
that raises is logged and retried with per-key exponential backoff; one that returns resets it.
Events that only move counts (a pod of a 10,000-pod ReplicaSet turned Ready) go through
`enqueue_coalesced`: a key whose last reconcile took t seconds is queued again at the earliest
COALESCE_FACTOR * t later (at most COALESCE_MAX), so all the events of that window cost one
reconcile and one hot key keeps a worker busy at most 1/(1 + COALESCE_FACTOR) of the time. A cheap
reconcile (small objects; or any reconcile under a FakeClock, which measures no time) is queued
at once, as `enqueue` does. A controller whose syncs write the counts they read (a ReplicaSet's or
Deployment's status) also sets `coalesce_floor`: count events for a key it has synced (in measurable
time: not under a FakeClock) wait at least that long, however cheap the sync, so a stream of pod
events costs a few status writes a second per object, not one per pod (as upstream's client-side
rate limit does).
A Conflict (the cache was behind the store: another writer got there first) is the expected
outcome of optimistic concurrency, not a bug: one line at INFO and a requeue, no traceback (in a
notebook a WARNING or a traceback is a red box under whatever cell is running); a key that still
conflicts after CONFLICT_RETRIES_AT_INFO retries is logged as a WARNING.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from nbkube.api.meta import Obj, key_of
from nbkube.client.workqueue import WorkQueue
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.errors import Conflict
from nbkube.logutil import log_failure

if TYPE_CHECKING:
    from nbkube.client.informer import InformerFactory
    from nbkube.registry.registry import Registry

__all__ = ["Controller", "only_status_changed", "COALESCE_FACTOR", "COALESCE_MAX", "CONFLICT_RETRIES_AT_INFO"]

COALESCE_FACTOR = 4.0
COALESCE_MAX = 1.0  # seconds: the longest a count change waits for its reconcile
CONFLICT_RETRIES_AT_INFO = 5  # conflicts on one key logged at INFO before they are a WARNING
_COALESCE_MIN = 0.002  # below this a delay is not worth the timer's round trip


_VOLATILE_META = ("resourceVersion", "managedFields")


def only_status_changed(old: Obj, new: Obj) -> bool:
    """True when an update touched nothing but status (and the bookkeeping metadata every write
    moves): a controller's own status write comes back this way, and must not cost a full pass."""
    if old.get("spec") != new.get("spec"):
        return False
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    keys = (set(om) | set(nm)) - set(_VOLATILE_META)
    return all(om.get(k) == nm.get(k) for k in keys)


class Controller:
    name: str = "controller"
    coalesce_floor: float = 0.0  # seconds: see the module docstring

    def __init__(
        self,
        api: Registry,
        factory: InformerFactory,
        *,
        clock: Clock = REAL_CLOCK,
        workers: int = 1,
    ):
        self.api = api
        self.factory = factory
        self.clock = clock
        self.workers = max(1, workers)
        self.queue = WorkQueue(clock=clock)
        self.log = logging.getLogger(f"nbkube.controller.{self.name}")
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._cost: dict[str, float] = {}  # key -> seconds its last reconcile took (clock time)

    def enqueue(self, obj: Obj) -> None:
        """Handler helper: queue the object's "namespace/name" key."""
        self.queue.add(key_of(obj))

    def enqueue_update(self, old: Obj, new: Obj) -> None:
        """Handler helper for an object's own updates: a status-only change is coalesced."""
        if only_status_changed(old, new):
            self.enqueue_coalesced(key_of(new))
        else:
            self.queue.add(key_of(new))

    def enqueue_coalesced(self, key: str) -> None:
        """Queue `key` after a delay in proportion to what its last reconcile cost (see the module)."""
        cost = self._cost.get(key, 0.0)
        delay = min(COALESCE_MAX, COALESCE_FACTOR * cost)
        if cost > 0.0:
            delay = max(delay, self.coalesce_floor)
        if delay < _COALESCE_MIN:
            self.queue.add(key)
        else:
            self.queue.add_after(key, delay)

    def reconcile(self, key: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement reconcile(key)")

    def process_next(self, timeout: float | None = None) -> bool:
        """Take one key, reconcile it and settle its retry state. False when none came (or stopped)."""
        key = self.queue.get(timeout)
        if key is None:
            return False
        started = self.clock.monotonic()
        try:
            self.reconcile(key)
        except Exception as exc:
            retries = self.queue.num_requeues(key)
            # a conflict is retried from a fresh read; only one that keeps coming back (a writer
            # fighting this controller over the object) deserves a warning
            quiet = isinstance(exc, Conflict) and retries < CONFLICT_RETRIES_AT_INFO
            log_failure(
                self.log,
                f"{self.name}: reconcile",
                exc,
                detail=f"{key}, retry {retries + 1}",
                level=logging.INFO if quiet else logging.WARNING,
            )
            self.queue.add_rate_limited(key)
        else:
            self.queue.forget(key)
        finally:
            cost = self.clock.monotonic() - started
            if cost >= _COALESCE_MIN / COALESCE_FACTOR or (self.coalesce_floor > 0.0 and cost > 0.0):
                self._cost[key] = cost
            else:
                self._cost.pop(key, None)  # cheap again (or gone): no entry kept for it
            self.queue.done(key)
        return True

    def _worker(self, queue: WorkQueue) -> None:
        while not queue.shutting_down:
            self.process_next()

    def start(self) -> None:
        """Start the worker threads (again after stop(): a fresh queue is made then)."""
        with self._lock:
            if self._threads:
                return
            if self.queue.shutting_down:
                self.queue = WorkQueue(
                    clock=self.clock, base_delay=self.queue.base_delay, max_delay=self.queue.max_delay
                )
            for i in range(self.workers):
                t = threading.Thread(
                    target=self._worker, args=(self.queue,), name=f"{self.name}-worker-{i}", daemon=True
                )
                t.start()
                self._threads.append(t)

    def stop(self) -> None:
        """Shut the queue (waking idle workers) and wait for the workers to finish their key."""
        with self._lock:
            threads, self._threads = self._threads, []
            self.queue.shutdown()
        for t in threads:
            if t is not threading.current_thread():
                t.join(timeout=5.0)
