"""Leader election over a Lease: one leader among two, takeover after lease expiry, release."""

from __future__ import annotations

import queue
import threading

from nbkube.client.leaderelection import LeaderElector
from nbkube.clock import FakeClock, parse_rfc3339
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
