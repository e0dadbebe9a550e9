"""Leader election through a coordination.k8s.io/v1 Lease, as kube-controller-manager does it.

Two control planes may run against one store (two notebooks, or a notebook and a CLI-started
one); only the lease holder may run controllers, or they would fight (and, say, create extra pods).
Every candidate tries to acquire or renew the Lease with a compare-and-swap write every
`renew_interval` (client-go's RetryPeriod); a holder that stops renewing loses it `lease_duration`
seconds after its last renewal. Three durations keep two leaders from overlapping, as client-go's
do (15 s / 10 s / 2 s upstream): lease_duration > renew_deadline > renew_interval. A leader that
has not renewed within `renew_deadline` stops acting at once (its on_stopped runs), which is
before any standby may take the lease; an error from the store counts as a failed renewal, never
as still holding. Time comes from the injected clock, so failover is tested with a FakeClock.

`holder_dead`: a predicate that can prove a holder's process gone (`procutil.identity_dead`: a
holder on this machine whose pid and start time no longer match). Such a Lease is taken at once,
so a control plane restarted after a SIGKILL does not wait out its own predecessor's Lease; a
holder it cannot prove dead (another machine, an unknown identity) is waited for as before.
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
from nbkube.logutil import log_failure

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
        renew_deadline: float | None = None,
        clock: Clock = REAL_CLOCK,
        renew: float | None = None,  # alias of renew_interval
        holder_dead: Callable[[str], bool] | None = None,
    ):
        self.api = api
        self.lease_name = lease_name
        self.identity = identity
        self.namespace = namespace
        self.lease_duration = lease_duration
        self.renew_interval = renew if renew is not None else renew_interval
        # client-go's ratio when not given: 10 s of a 15 s lease
        self.renew_deadline = renew_deadline if renew_deadline is not None else lease_duration * 2 / 3
        if not lease_duration > self.renew_deadline > self.renew_interval > 0:
            raise ValueError(
                f"leader election needs lease_duration ({lease_duration:g}) > renew_deadline "
                f"({self.renew_deadline:g}) > renew_interval ({self.renew_interval:g}) > 0"
            )
        self.clock = clock
        self.holder_dead = holder_dead
        self._leader = False
        self._last_renew = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_stopped: Callable[[], object] | None = None
        self._leading_in_loop = False  # what the run() loop last told its callbacks

    @property
    def is_leader(self) -> bool:
        """Leading now: the last renewal succeeded within `renew_deadline` (not merely the lease)."""
        with self._lock:
            return self._leader and self.clock.now() < self._last_renew + self.renew_deadline

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
                if (
                    holder
                    and holder != self.identity
                    and not self._expired(spec, now)
                    and not self._dead(holder)
                ):
                    return self._set(False, now)  # someone else holds it: we certainly do not
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
        except NbkubeError as exc:
            # the store could not be reached: not a renewal. Leadership then lasts only until the
            # renew deadline of the last good one (`is_leader`, the run loop), never beyond.
            log_failure(log, f"lease {self.namespace}/{self.lease_name}: acquire/renew", exc)
            return False
        return self._set(True, now)

    def _dead(self, holder: str) -> bool:
        if self.holder_dead is None or not self.holder_dead(holder):
            return False
        log.info(
            "lease %s/%s: holder %s is a process that no longer runs; taking the lease now",
            self.namespace,
            self.lease_name,
            holder,
        )
        return True

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

        A failed renewal (a lost write, an unreachable store) is retried every `renew_interval`;
        when none has succeeded for `renew_deadline`, or another holder is seen, leadership ends
        at once, as client-go's renew loop ends at its RenewDeadline."""
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
            # the renew deadline may have passed while waiting: stop before writing anything
            leading = self._check_still_leading(leading, on_stopped)
            ok = self.try_acquire_or_renew()
            if ok and not leading:
                leading = True
                log.info("%s became leader of %s/%s", self.identity, self.namespace, self.lease_name)
                self._callback(on_started)
            # another holder seen, or the attempt itself outlasted the deadline: stop now
            leading = self._check_still_leading(leading, on_stopped)
            self._leading_in_loop = leading
            wait = self.renew_interval
            if leading:
                # wake no later than the renew deadline, so a leader that cannot renew stops then
                with self._lock:
                    left = self._last_renew + self.renew_deadline - self.clock.now()
                wait = min(wait, max(0.0, left))
            self.clock.wait(self._stop, wait)

    def _check_still_leading(self, leading: bool, on_stopped: Callable[[], object]) -> bool:
        if not leading or self.is_leader:
            return leading
        with self._lock:
            self._leader = False
        self._leading_in_loop = False
        log.warning(
            "%s lost leadership of %s/%s (no renewal within %gs, or another holder)",
            self.identity,
            self.namespace,
            self.lease_name,
            self.renew_deadline,
        )
        self._callback(on_stopped)
        return False

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
        except NbkubeError as exc:
            log_failure(log, f"lease {self.namespace}/{self.lease_name}: release", exc)
