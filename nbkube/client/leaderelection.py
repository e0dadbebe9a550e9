"""Leader election through a coordination.k8s.io/v1 Lease, as kube-controller-manager does it.

Two control planes may run against one store (two notebooks, or a notebook and a CLI-started
one); only the lease holder may run controllers, or they would fight (and, say, create extra pods).
Every candidate periodically tries to acquire or renew the Lease with a compare-and-swap write;
a holder that stops renewing loses it `lease_duration` seconds after its last renewal.
Time comes from the injected clock, so failover is tested with a FakeClock.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from nbkube.api.meta import Obj
from nbkube.clock import REAL_CLOCK, Clock, parse_rfc3339, rfc3339
from nbkube.errors import AlreadyExists, Conflict, NbkubeError, NotFound

if TYPE_CHECKING:
    from nbkube.registry.registry import Registry

__all__ = ["LeaderElector"]

log = logging.getLogger(__name__)


class LeaderElector:
    def __init__(
        self,
        api: Registry,
        lease_name: str,
        identity: str,
        *,
        namespace: str = "kube-system",
        lease_duration: float = 15.0,
        renew_interval: float = 5.0,
        clock: Clock = REAL_CLOCK,
        renew: float | None = None,  # alias of renew_interval (INTERFACES.md spells it `renew`)
    ):
        self.api = api
        self.lease_name = lease_name
        self.identity = identity
        self.namespace = namespace
        self.lease_duration = lease_duration
        self.renew_interval = renew if renew is not None else renew_interval
        self.clock = clock
        self._leader = False
        self._last_renew = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_stopped: Callable[[], object] | None = None
        self._leading_in_loop = False  # what the run() loop last told its callbacks

    @property
    def is_leader(self) -> bool:
        with self._lock:
            return self._leader and self.clock.now() < self._last_renew + self.lease_duration

    def _spec(self, now: float, acquire: str, transitions: int) -> dict[str, object]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, math.ceil(self.lease_duration)),
            "acquireTime": acquire,
            "renewTime": rfc3339(now, micro=True),
            "leaseTransitions": transitions,
        }

    def try_acquire_or_renew(self) -> bool:
        """One attempt: True if this identity holds the lease afterwards."""
        now = self.clock.now()
        stamp = rfc3339(now, micro=True)
        try:
            try:
                lease = self.api.get("Lease", self.lease_name, self.namespace)
            except NotFound:
                lease = None
            if lease is None:
                self.api.create(
                    {
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {"name": self.lease_name, "namespace": self.namespace},
                        "spec": self._spec(now, stamp, 0),
                    }
                )
            else:
                spec = lease.get("spec") or {}
                holder = spec.get("holderIdentity") or ""
                if holder and holder != self.identity and not self._expired(spec, now):
                    return self._set(False, now)
                transitions = int(spec.get("leaseTransitions") or 0)
                if holder == self.identity:
                    acquire = spec.get("acquireTime") or stamp
                else:
                    acquire = stamp
                    transitions += 1 if holder else 0
                updated: Obj = {**lease, "spec": {**spec, **self._spec(now, acquire, transitions)}}
                self.api.update(updated)
        except (Conflict, AlreadyExists):
            return self._set(False, now)  # someone else wrote first; they lead (or will)
        except NbkubeError:
            log.warning("lease %s/%s: acquire/renew failed", self.namespace, self.lease_name, exc_info=True)
            return self._set(False, now)
        return self._set(True, now)

    @staticmethod
    def _expired(spec: dict[str, object], now: float) -> bool:
        renew = spec.get("renewTime") or spec.get("acquireTime")
        if not renew:
            return True
        try:
            renewed = parse_rfc3339(str(renew))
        except ValueError:
            return True
        duration = float(spec.get("leaseDurationSeconds") or 0)  # type: ignore[arg-type]
        return now >= renewed + duration

    def _set(self, leader: bool, now: float) -> bool:
        with self._lock:
            self._leader = leader
            if leader:
                self._last_renew = now
        return leader

    # -- background loop -------------------------------------------------------------------------

    def run(self, on_started: Callable[[], object], on_stopped: Callable[[], object]) -> None:
        """Try/renew every `renew_interval` in a thread; call on_started/on_stopped on transitions.

        A failed renewal only ends leadership once the lease would have expired (or another
        holder took it), as client-go tolerates transient errors up to its renew deadline."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._on_stopped = on_stopped
        self._thread = threading.Thread(
            target=self._loop, args=(on_started, on_stopped), name=f"leader-{self.lease_name}", daemon=True
        )
        self._thread.start()

    def _loop(self, on_started: Callable[[], object], on_stopped: Callable[[], object]) -> None:
        leading = False
        while not self._stop.is_set():
            ok = self.try_acquire_or_renew()
            if ok and not leading:
                leading = True
                log.info("%s became leader of %s/%s", self.identity, self.namespace, self.lease_name)
                self._callback(on_started)
            elif not ok and leading and not self._still_holding():
                leading = False
                log.info("%s lost leadership of %s/%s", self.identity, self.namespace, self.lease_name)
                self._callback(on_stopped)
            self._leading_in_loop = leading
            self.clock.wait(self._stop, self.renew_interval)

    def _still_holding(self) -> bool:
        """After a failed renewal: do we still hold a lease that has not expired?"""
        now = self.clock.now()
        if now >= self._last_renew + self.lease_duration:
            return False
        try:
            spec = self.api.get("Lease", self.lease_name, self.namespace).get("spec") or {}
        except NbkubeError:
            return True  # cannot tell; keep leading until our own lease time runs out
        held = spec.get("holderIdentity") == self.identity
        with self._lock:
            self._leader = held
        return held

    @staticmethod
    def _callback(fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception:
            log.exception("leader election callback %r failed", fn)

    def stop(self, release: bool = True) -> None:
        """Stop the loop; if leading, release the lease (unless `release=False`, which simulates a
        crash: the others then wait for it to expire) and call on_stopped."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5.0)
        self._thread = None
        was_leading = self._leading_in_loop
        self._leading_in_loop = False
        if release and self._leader:
            self._release()
        with self._lock:
            self._leader = False
        if was_leading and self._on_stopped is not None:
            self._callback(self._on_stopped)

    def _release(self) -> None:
        try:
            lease = self.api.get("Lease", self.lease_name, self.namespace)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            now = self.clock.now()
            lease = {
                **lease,
                "spec": {
                    **spec,
                    "holderIdentity": "",
                    "leaseDurationSeconds": 1,
                    "renewTime": rfc3339(now, micro=True),
                },
            }
            self.api.update(lease)
        except NbkubeError:
            log.warning("lease %s/%s: release failed", self.namespace, self.lease_name, exc_info=True)
