"""Keeps a node's firewall in step with the cluster: Pods, Namespaces, NetworkPolicies in, one sync
per change burst.

Wired by `nbkube.node.kit` for Docker nodes (an `IptablesFirewall`) and simulated ones (a
`FakeFirewall`). As the proxy runner does: informer handlers only mark the table dirty; one thread
recomputes the whole table of the node's pods (`policy.compute`, pure) and hands it to the
firewall, coalescing a burst of pod changes into one write; a failed sync is retried with
back-off, never dropped. The first sync waits for `start_after` (on Docker nodes the proxy's first
sync, so that our FORWARD jump is inserted in front of the proxy's), and every `check_every`
seconds the firewall checks that nobody moved its rules since (the proxy re-inserting its jumps
after a failure, an administrator). Simulated nodes (there may be thousands) use `threaded=False`: the sync
then runs in the informer's handler, no thread per node; with no NetworkPolicy in the cluster a
sync costs one look at the policy list. Their Pod and Namespace events go through one shared
handler per informer (`_InlineFanout`) that hands them on only while a NetworkPolicy exists: with
none, a pod event costs one look at the policy count, not one call per simulated node.
The cluster DNS's EndpointSlices (kube-system/kube-dns) are an input too: their addresses count as
kube-system's DNS pods for egress rules (`policy.dns_stand_ins`); other slices' changes are not
looked at.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable

from nbkube.api.discovery import LABEL_SERVICE_NAME
from nbkube.api.meta import Obj
from nbkube.client.informer import Informer, InformerFactory
from nbkube.node.firewall.base import Firewall
from nbkube.node.firewall.policy import DNS_NAMESPACE, DNS_SERVICE, PodFirewall, compute, dns_stand_ins
from nbkube.node.syncloop import SyncLoop

__all__ = ["FirewallRunner"]

log = logging.getLogger(__name__)


class _InlineFanout:
    """The one handler an informer has for every inline runner of the process (see the module)."""

    _by_informer: weakref.WeakKeyDictionary[Informer, _InlineFanout] = weakref.WeakKeyDictionary()
    _registry_lock = threading.Lock()

    def __init__(self, policies: Informer, only: Callable[[Obj], bool] | None = None):
        self.policies = policies
        self.only = only
        self.runners: list[FirewallRunner] = []
        self.lock = threading.Lock()

    @classmethod
    def join(
        cls,
        informer: Informer,
        policies: Informer,
        runner: FirewallRunner,
        only: Callable[[Obj], bool] | None = None,
    ) -> None:
        with cls._registry_lock:
            fan = cls._by_informer.get(informer)
            new = fan is None
            if fan is None:
                fan = cls._by_informer[informer] = _InlineFanout(policies, only)
        with fan.lock:
            fan.runners.append(runner)
        if new:
            informer.add_handler(on_add=fan.mark, on_update=fan.mark, on_delete=fan.mark)

    @classmethod
    def leave(cls, runner: FirewallRunner) -> None:
        with cls._registry_lock:
            fans = list(cls._by_informer.values())
        for fan in fans:
            with fan.lock:
                if runner in fan.runners:
                    fan.runners.remove(runner)

    def mark(self, *objs: Obj) -> None:
        if self.only is not None and not self.only(objs[-1]):
            return
        # With no policy, no runner's table depends on pods or namespaces (a policy's removal
        # reaches every runner through the policy informer, which this gate does not filter).
        if not self.policies.count():
            return
        with self.lock:
            runners = list(self.runners)
        for runner in runners:
            runner._mark()


def _is_dns_slice(obj: Obj) -> bool:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") == DNS_NAMESPACE and (meta.get("labels") or {}).get(LABEL_SERVICE_NAME) == DNS_SERVICE


class FirewallRunner(SyncLoop):
    """Calls `firewall.sync(table)` for `node_name`'s pods whenever a policy input changes."""

    def __init__(
        self,
        factory: InformerFactory,
        firewall: Firewall,
        node_name: str,
        *,
        threaded: bool = True,
        cleanup_on_stop: bool = False,
        check_every: float = 10.0,
        start_after: Callable[[float], object] | None = None,
    ) -> None:
        super().__init__(f"firewall-{node_name}")
        self._pods = factory.informer("Pod")
        self._namespaces = factory.informer("Namespace")
        self._policies = factory.informer("NetworkPolicy")
        self._slices = factory.informer("EndpointSlice")  # on Docker nodes the proxy's informer
        self.firewall = firewall
        self.node_name = node_name
        self._threaded = threaded
        self._cleanup_on_stop = cleanup_on_stop
        self._check_every = check_every
        self._start_after = start_after
        self._lock = threading.Lock()  # inline mode: informer threads call in concurrently
        self.table: dict[str, PodFirewall] = {}
        self._started_inline = False

    def _mark(self, *_objs: object) -> None:
        if self._threaded:
            self.mark()
            return
        with self._lock:
            try:
                self._sync_once()
            except Exception as exc:  # the next change retries
                self.last_error = str(exc)
                log.warning("firewall of %s: sync failed: %s", self.node_name, exc)

    def _dns_slice_changed(self, *objs: Obj) -> None:
        if _is_dns_slice(objs[-1]):
            self._mark()

    def start(self) -> None:
        if self._thread is not None:
            return
        for informer in (self._pods, self._namespaces, self._policies):
            if self._threaded or informer is self._policies:
                informer.add_handler(on_add=self._mark, on_update=self._mark, on_delete=self._mark)
            else:
                _InlineFanout.join(informer, self._policies, self)
            informer.start()  # no-op when the factory already runs it
        if self._threaded:
            on = self._dns_slice_changed
            self._slices.add_handler(on_add=on, on_update=on, on_delete=on)
        else:
            _InlineFanout.join(self._slices, self._policies, self, only=_is_dns_slice)
        self._slices.start()
        if not self._threaded:
            self._started_inline = True
            self._mark()  # the first table (empty while no policy exists), as the thread's first sync
            return
        self._start_thread(self._run)

    def stop(self) -> None:
        if self._started_inline:
            _InlineFanout.leave(self)
            self._started_inline = False
        self._stop_thread()
        if self._cleanup_on_stop:
            self.firewall.cleanup()

    def _sync_once(self) -> None:
        policies = self._policies.list()
        table = (
            compute(
                self._pods.list(),
                self._namespaces.list(),
                policies,
                self.node_name,
                stand_ins=dns_stand_ins(self._slices.by_index("label", f"{LABEL_SERVICE_NAME}={DNS_SERVICE}")),
            )
            if policies
            else {}
        )
        self.firewall.sync(table)
        self.table = table
        self._synced()

    def _run(self) -> None:
        for informer in (self._pods, self._namespaces, self._policies, self._slices):
            informer.wait_synced(30)
        if self._start_after is not None:
            # Our FORWARD jump goes in front of what is there at our first sync: the proxy's
            # jumps (which ACCEPT NodePort traffic) must be there already, or they would land in
            # front of ours and let that traffic past every policy.
            self._start_after(30.0)
        next_check = time.monotonic() + self._check_every
        while not self._stop.is_set():
            wait = max(0.0, next_check - time.monotonic()) if self.syncs else None
            if not self._dirty.wait(wait) or time.monotonic() >= next_check:
                # Every check_every seconds, busy or not: make sure nobody moved our rules.
                next_check = time.monotonic() + self._check_every
                try:
                    self.firewall.check()
                except Exception as exc:
                    log.warning("firewall of %s: check failed: %s", self.node_name, exc)
                if not self._dirty.is_set():
                    continue
            if self._stop.is_set():
                return
            self._dirty.clear()
            try:
                self._sync_once()
            except Exception as exc:  # the firewall must keep trying; the next change may fix it
                self._failed(exc, log, f"firewall of {self.node_name}: sync")
                continue
