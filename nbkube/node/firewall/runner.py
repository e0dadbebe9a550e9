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
sync costs one look at the policy list.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from nbkube.client.informer import InformerFactory
from nbkube.node.firewall.base import Firewall
from nbkube.node.firewall.policy import PodFirewall, compute
from nbkube.node.syncloop import SyncLoop

__all__ = ["FirewallRunner"]

log = logging.getLogger(__name__)


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
        self.firewall = firewall
        self.node_name = node_name
        self._threaded = threaded
        self._cleanup_on_stop = cleanup_on_stop
        self._check_every = check_every
        self._start_after = start_after
        self._lock = threading.Lock()  # inline mode: informer threads call in concurrently
        self.table: dict[str, PodFirewall] = {}

    def _mark(self, *_objs: object) -> None:
        if self._threaded:
            self.mark()
            return
        with self._lock:
            if self.syncs and not self.table and not self._policies.count():
                return  # no policy anywhere and none enforced here: a pod event changes nothing
            try:
                self._sync_once()
            except Exception as exc:  # the next change retries
                self.last_error = str(exc)
                log.warning("firewall of %s: sync failed: %s", self.node_name, exc)

    def start(self) -> None:
        if self._thread is not None:
            return
        for informer in (self._pods, self._namespaces, self._policies):
            informer.add_handler(on_add=self._mark, on_update=self._mark, on_delete=self._mark)
            informer.start()  # no-op when the factory already runs it
        if not self._threaded:
            return
        self._start_thread(self._run)

    def stop(self) -> None:
        self._stop_thread()
        if self._cleanup_on_stop:
            self.firewall.cleanup()

    def _sync_once(self) -> None:
        policies = self._policies.list()
        table = (
            compute(self._pods.list(), self._namespaces.list(), policies, self.node_name) if policies else {}
        )
        self.firewall.sync(table)
        self.table = table
        self._synced()

    def _run(self) -> None:
        for informer in (self._pods, self._namespaces, self._policies):
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
