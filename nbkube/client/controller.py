"""The base of every reconcile loop (replication, deployment, endpoints, node lifecycle, ...).

A controller = informer cache + work queue + `reconcile(key)`, as docs/architecture.md describes. Subclasses
register informer handlers in `__init__` that only enqueue keys (`self.enqueue(obj)`), and
implement `reconcile(key)`: read the cache, compare desired with observed, write with the
resourceVersion read, and be safe to run again. This base runs the worker threads: a reconcile
that raises is logged and retried with per-key exponential backoff; one that returns resets it.
A Conflict (the cache was behind the store: another writer got there first) is the expected
outcome of optimistic concurrency, not a bug: one line at INFO and a requeue, no traceback (in a
notebook a WARNING or a traceback is a red box under whatever cell is running).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from nbkube.api.meta import Obj, key_of
from nbkube.client.workqueue import WorkQueue
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.logutil import log_failure

if TYPE_CHECKING:
    from nbkube.client.informer import InformerFactory
    from nbkube.registry.registry import Registry

__all__ = ["Controller"]


class Controller:
    name: str = "controller"

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

    def enqueue(self, obj: Obj) -> None:
        """Handler helper: queue the object's "namespace/name" key."""
        self.queue.add(key_of(obj))

    def reconcile(self, key: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement reconcile(key)")

    def process_next(self, timeout: float | None = None) -> bool:
        """Take one key, reconcile it and settle its retry state. False when none came (or stopped)."""
        key = self.queue.get(timeout)
        if key is None:
            return False
        try:
            self.reconcile(key)
        except Exception as exc:
            retries = self.queue.num_requeues(key)
            log_failure(self.log, f"{self.name}: reconcile", exc, detail=f"{key}, retry {retries + 1}")
            self.queue.add_rate_limited(key)
        else:
            self.queue.forget(key)
        finally:
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
