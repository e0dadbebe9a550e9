"""Leader election over a Lease: one leader among two, takeover after lease expiry, release."""

from __future__ import annotations

import queue
import threading

import pytest

from nbkube.client.leaderelection import LeaderElector
from nbkube.clock import FakeClock, parse_rfc3339
from nbkube.errors import StoreUnavailable
from nbkube.registry.registry import Registry


def electors(api: Registry, clock: FakeClock) -> tuple[LeaderElector, LeaderElector]:
    kw = {"lease_duration": 15.0, "renew_interval": 5.0, "clock": clock}
    return LeaderElector(api, "cm", "a", **kw), LeaderElector(api, "cm", "b", **kw)  # type: ignore[arg-type]


def test_exactly_one_leads_and_takeover_after_expiry(api: Registry) -> None:
    clock = FakeClock()
    a, b = electors(api, clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert a.is_leader and not b.is_leader
    lease = api.get("Lease", "cm", "kube-system")
    assert lease["spec"]["holderIdentity"] == "a"
    assert lease["spec"]["leaseDurationSeconds"] == 15
    assert lease["spec"]["renewTime"].endswith(".000000Z")
    clock.advance(5)
    assert a.try_acquire_or_renew()  # renewal moves renewTime
    renewed = api.get("Lease", "cm", "kube-system")["spec"]
    assert parse_rfc3339(renewed["renewTime"]) == clock.now()
    assert renewed["acquireTime"] == lease["spec"]["acquireTime"]
    # a stops renewing (crashed): b must wait the full lease duration from the last renewal
    clock.advance(14.9)
    assert not b.try_acquire_or_renew()
    clock.advance(0.2)
    assert b.try_acquire_or_renew()
    assert b.is_leader and not a.is_leader  # a's own view expired with its lease
    assert not a.try_acquire_or_renew()
    spec = api.get("Lease", "cm", "kube-system")["spec"]
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1


def test_a_holder_proved_dead_is_taken_over_at_once(api: Registry) -> None:
    clock = FakeClock()
    dead: set[str] = set()
    kw = {"lease_duration": 15.0, "renew_interval": 5.0, "clock": clock, "holder_dead": dead.__contains__}
    a = LeaderElector(api, "cm", "a", **kw)  # type: ignore[arg-type]
    b = LeaderElector(api, "cm", "b", **kw)  # type: ignore[arg-type]
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # a's process still runs: b waits for the lease
    dead.add("a")
    clock.advance(1)
    assert b.try_acquire_or_renew()  # long before the 15 s lapse
    spec = api.get("Lease", "cm", "kube-system")["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1


def test_simultaneous_first_acquire_has_one_winner(api: Registry) -> None:
    clock = FakeClock()
    a, b = electors(api, clock)
    results = [a.try_acquire_or_renew(), b.try_acquire_or_renew()]
    assert results == [True, False]


def wait_renewed_by(api: Registry, clock: FakeClock, holder: str) -> None:
    """Wait (bounded) until `holder` has renewed the lease at the fake clock's current time."""
    done = threading.Event()
    for _ in range(500):
        spec = api.get("Lease", "cm", "kube-system")["spec"]
        if spec["holderIdentity"] == holder and parse_rfc3339(spec["renewTime"]) == clock.now():
            return
        done.wait(0.01)
    raise AssertionError(f"{holder} did not renew at {clock.now()}")


def test_run_threads_failover_and_release(api: Registry) -> None:
    clock = FakeClock()
    a, b = electors(api, clock)
    log: queue.Queue[str] = queue.Queue()
    try:
        a.run(lambda: log.put("a started"), lambda: log.put("a stopped"))
        assert log.get(timeout=5) == "a started"
        b.run(lambda: log.put("b started"), lambda: log.put("b stopped"))
        for _ in range(4):  # several renew rounds: a keeps the lease, b keeps waiting
            clock.advance(5)
            wait_renewed_by(api, clock, "a")
        assert log.empty()
        assert a.is_leader and not b.is_leader
        a.stop(release=False)  # crash: no release, b must wait for expiry
        assert log.get(timeout=5) == "a stopped"
        clock.advance(5)
        assert log.empty()
        for _ in range(6):
            clock.advance(5)
            try:
                assert log.get(timeout=0.5) == "b started"
                break
            except queue.Empty:
                continue
        assert b.is_leader
        # an orderly stop releases the lease so a new candidate gets it at its first try
        b.stop()
        assert log.get(timeout=5) == "b stopped"
        assert api.get("Lease", "cm", "kube-system")["spec"]["holderIdentity"] == ""
        c = LeaderElector(api, "cm", "c", clock=clock)
        assert c.try_acquire_or_renew()
    finally:
        a.stop()
        b.stop()


# --- renew deadline: a partitioned leader stops before a standby starts -----------------------------


class _Partition:
    """The registry as one elector sees it: while `cut` is set, every call fails as an unreachable
    store would (the others still reach it)."""

    def __init__(self, api: Registry) -> None:
        self._api = api
        self.cut = False

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._api, name)
        if not callable(attr):
            return attr

        def call(*args: object, **kwargs: object) -> object:
            if self.cut:
                raise StoreUnavailable("partitioned from the store")
            return attr(*args, **kwargs)

        return call


def _advance_until(clock: FakeClock, log: queue.Queue[tuple[str, float]], want: str, until: float) -> float:
    """Advance the fake clock in small steps up to `until`, returning when `want` was logged (at what
    fake time); the threads get a bounded real-time moment to act after each step."""
    while True:
        try:
            what, at = log.get(timeout=0.2)
        except queue.Empty:
            if clock.now() >= until:
                raise AssertionError(f"{want!r} did not happen by {until - 1_700_000_000.0:g}s") from None
            clock.advance(0.5)
            continue
        assert what == want, f"{what!r} happened before {want!r}"
        return at


def test_partitioned_leader_stops_before_a_standby_starts(api: Registry) -> None:
    clock = FakeClock()
    start = clock.now()
    link = _Partition(api)
    kw = {"lease_duration": 15.0, "renew_deadline": 10.0, "renew_interval": 2.0, "clock": clock}
    a = LeaderElector(link, "cm", "a", **kw)  # type: ignore[arg-type]
    b = LeaderElector(api, "cm", "b", **kw)  # type: ignore[arg-type]
    log: queue.Queue[tuple[str, float]] = queue.Queue()
    try:
        a.run(lambda: log.put(("a started", clock.now())), lambda: log.put(("a stopped", clock.now())))
        assert log.get(timeout=5) == ("a started", start)
        b.run(lambda: log.put(("b started", clock.now())), lambda: log.put(("b stopped", clock.now())))
        link.cut = True  # a's last renewal was at `start`
        stopped = _advance_until(clock, log, "a stopped", start + 15)
        assert stopped <= start + 10.0, "a stops at its renew deadline"
        assert not a.is_leader and not b.is_leader
        started = _advance_until(clock, log, "b started", start + 30)
        assert started >= start + 15.0, "b waits for the lease a last renewed to expire"
        assert b.is_leader
        link.cut = False  # a comes back: it finds b holding the lease and stays a standby
        clock.advance(2)
        wait_renewed_by(api, clock, "b")
        assert not a.is_leader
        assert log.empty()
    finally:
        a.stop()
        b.stop()


def test_a_store_error_is_not_a_renewal(api: Registry) -> None:
    clock = FakeClock()
    link = _Partition(api)
    a = LeaderElector(link, "cm", "a", lease_duration=15, renew_deadline=10, renew_interval=2, clock=clock)  # type: ignore[arg-type]
    assert a.try_acquire_or_renew()
    link.cut = True
    for _ in range(4):
        clock.advance(2)
        assert not a.try_acquire_or_renew()
    assert a.is_leader, "within the renew deadline of the last good renewal"
    clock.advance(2)
    assert not a.try_acquire_or_renew()
    assert not a.is_leader, "10 s without a renewal: not leading, although the lease runs 15 s"


@pytest.mark.parametrize(("lease", "deadline", "retry"), [(15, 15, 2), (15, 10, 10), (3, 4, 1), (15, 10, 0)])
def test_durations_must_be_ordered(api: Registry, lease: float, deadline: float, retry: float) -> None:
    with pytest.raises(ValueError, match="lease_duration"):
        LeaderElector(api, "cm", "a", lease_duration=lease, renew_deadline=deadline, renew_interval=retry)
