"""Keeps a service proxy in step with the cluster: Services + EndpointSlices in, one sync per change burst.

Both proxies (userspace for the embedded mode, iptables on real nodes) are programmed the same way,
as kube-proxy's sync loop does: informer handlers only mark the table dirty; one thread recomputes
the rule table and hands it to the proxy's own `sync`, coalescing a burst of endpoint changes into
one write. The handlers also note which services changed, and the table comes from a `RuleCache`
that recomputes only those (`refresh`): an endpoint change among 1,000 services then costs one
service's computation, not a pass over all 2,000 objects (the sync must not slow down with cluster
size, least of all on a busy node). The first sync, and any after a failure, recompute everything
from the informers' lists (`compute`, which still reuses unchanged services by resourceVersion). A failed sync is retried with back-off, never dropped. `on_idle`, when given, runs once after
`idle_after` seconds without a change: the iptables proxy tidies up there what its fast syncs left
(`IptablesProxy.compact`), off the path of any change.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from nbkube.api.meta import Obj, key_of
from nbkube.client.informer import InformerFactory
from nbkube.node.proxy.rules import (
    SERVICE_NAME_LABEL,
    RuleCache,
    ServicePortRule,
    endpoints_from_slices,
    slice_service_key,
)
from nbkube.node.syncloop import SyncLoop

__all__ = ["ProxyRunner"]

log = logging.getLogger(__name__)


class ProxyRunner(SyncLoop):
    """Calls `apply(rules)` whenever Services or their EndpointSlices change (and once at start).

    Slices are read as the Endpoints shape the rules are computed from (`endpoints_from_slices`):
    one Service's slices, found by their service-name label, make one Endpoints-like object."""

    def __init__(
        self,
        factory: InformerFactory,
        apply: Callable[[list[ServicePortRule]], Any],
        *,
        name: str = "proxy",
        on_idle: Callable[[], Any] | None = None,
        idle_after: float = 1.0,
    ):
        super().__init__(name)
        self._services = factory.informer("Service")
        self._endpoints = factory.informer("EndpointSlice")
        self._apply = apply
        self._on_idle = on_idle
        self._idle_after = idle_after
        self._name = name
        self.rules: list[ServicePortRule] = []
        self._cache = RuleCache()
        self._changed: set[str] = set()  # service keys changed since the last sync
        self._changed_lock = threading.Lock()
        self._full = True  # next sync recomputes from the lists (first one, or after a failure)

    def _mark(self, *objs: Obj) -> None:
        # on_add(obj), on_delete(obj), on_update(old, new): the last one is the current object. The
        # cache works by the Service's namespace/name; a slice names its Service in a label.
        obj = objs[-1]
        key = slice_service_key(obj) if obj.get("kind") == "EndpointSlice" else key_of(obj)
        if key is None:
            return
        with self._changed_lock:
            self._changed.add(key)
        self.mark()

    def _endpoints_of(self, key: str) -> Obj | None:
        """The Service `key`'s slices as one Endpoints-shaped object (None: it has none)."""
        ns, _, name = key.partition("/")
        slices = [
            s
            for s in self._endpoints.by_index("label", f"{SERVICE_NAME_LABEL}={name}")
            if ((s.get("metadata") or {}).get("namespace") or "default") == ns
        ]
        return endpoints_from_slices(key, slices)

    def _all_endpoints(self) -> list[Obj]:
        by_service: dict[str, list[Obj]] = {}
        for sl in self._endpoints.list():
            key = slice_service_key(sl)
            if key is not None:
                by_service.setdefault(key, []).append(sl)
        out = [endpoints_from_slices(key, slices) for key, slices in by_service.items()]
        return [ep for ep in out if ep is not None]

    def start(self) -> None:
        if self._thread is not None:
            return
        for informer in (self._services, self._endpoints):
            informer.add_handler(on_add=self._mark, on_update=self._mark, on_delete=self._mark)
            informer.start()  # no-op when the factory already runs it
        self._start_thread(self._run)

    def stop(self) -> None:
        self._stop_thread()

    def _run(self) -> None:
        for informer in (self._services, self._endpoints):
            informer.wait_synced(30)
        idle_due = False  # a sync happened since on_idle last ran
        while not self._stop.is_set():
            if not self._dirty.wait(self._idle_after if idle_due and self._on_idle else None):
                idle_due = False
                assert self._on_idle is not None
                try:
                    self._on_idle()
                except Exception as exc:  # a failed tidy-up is retried after the next sync
                    log.warning("%s idle work failed: %s", self._name, exc)
                continue
            if self._stop.is_set():
                return
            self._dirty.clear()
            with self._changed_lock:
                changed, self._changed = self._changed, set()
            try:
                if self._full:
                    rules = self._cache.compute(self._services.list(), self._all_endpoints())
                else:
                    rules = self._cache.refresh(changed, self._services.get, self._endpoints_of)
                self._full = False
                self._apply(rules)
            except Exception as exc:  # the proxy must keep trying; the next change may fix it
                self._full = True  # whatever was half done, the retry starts from the lists
                self._failed(exc, log, f"{self._name} sync")
                continue
            idle_due = True
            self.rules = rules
            self._synced()
