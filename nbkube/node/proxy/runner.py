"""Keeps a service proxy in step with the cluster: Services + Endpoints in, one sync per change burst.

Both proxies (userspace for the embedded mode, iptables on real nodes) are programmed the same way,
as kube-proxy's sync loop does: informer handlers only mark the table dirty; one thread recomputes
the rule table and hands it to the proxy's own `sync`, coalescing a burst of endpoint changes into
one write. The table comes from a `RuleCache`, which recomputes only the services whose Service or
Endpoints resourceVersion moved: an endpoint change among 1,000 services then costs one service's
computation, not all of them (the sync must not slow down with cluster size, least of all on a busy
node). A failed sync is retried with back-off, never dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from nbkube.api.meta import Obj
from nbkube.client.informer import InformerFactory
from nbkube.node.proxy.rules import RuleCache, ServicePortRule

__all__ = ["ProxyRunner"]

log = logging.getLogger(__name__)

_RETRY_START = 0.1
_RETRY_MAX = 5.0


class ProxyRunner:
    """Calls `apply(rules)` whenever Services or Endpoints change (and once at start)."""

    def __init__(
        self,
        factory: InformerFactory,
        apply: Callable[[list[ServicePortRule]], Any],
        *,
        name: str = "proxy",
    ):
        self._services = factory.informer("Service")
        self._endpoints = factory.informer("Endpoints")
        self._apply = apply
        self._name = name
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self.syncs = 0  # completed syncs, for tests and benchmarks
        self.last_error = ""
        self.rules: list[ServicePortRule] = []
        self._cache = RuleCache()

    def _mark(self, *_objs: Obj) -> None:
        self._dirty.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        for informer in (self._services, self._endpoints):
            informer.add_handler(on_add=self._mark, on_update=self._mark, on_delete=self._mark)
            informer.start()  # no-op when the factory already runs it
        self._stop.clear()
        self._dirty.set()
        self._thread = threading.Thread(target=self._run, name=f"nbkube-{self._name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def wait_synced(self, timeout: float = 10.0) -> bool:
        """Wait until the latest change has been applied (no sync pending or running)."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._dirty.is_set() and self.syncs > 0, timeout)

    def _run(self) -> None:
        for informer in (self._services, self._endpoints):
            informer.wait_synced(30)
        delay = _RETRY_START
        while not self._stop.is_set():
            self._dirty.wait()
            if self._stop.is_set():
                return
            self._dirty.clear()
            try:
                rules = self._cache.compute(self._services.list(), self._endpoints.list())
                self._apply(rules)
            except Exception as exc:  # the proxy must keep trying; the next change may fix it
                self.last_error = str(exc)
                log.warning("%s sync failed (retrying in %.1fs): %s", self._name, delay, exc)
                self._dirty.set()
                self._stop.wait(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            delay = _RETRY_START
            self.rules = rules
            self.last_error = ""
            with self._idle:
                self.syncs += 1
                self._idle.notify_all()
