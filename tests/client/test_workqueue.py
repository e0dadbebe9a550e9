"""WorkQueue semantics: dedup, one worker per key, re-queue after done, delays on a FakeClock,
exponential rate limiting and shutdown."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from nbkube.client.workqueue import WorkQueue
from nbkube.clock import FakeClock


@pytest.fixture
def fq(clock: FakeClock) -> Iterator[WorkQueue]:
    q = WorkQueue(clock=clock, base_delay=1.0, max_delay=8.0)
    yield q
    q.shutdown()


def test_dedup_and_fifo(fq: WorkQueue) -> None:
    for key in ("a", "b", "a", "c", "b"):
        fq.add(key)
    assert len(fq) == 3
    assert [fq.get(0), fq.get(0), fq.get(0)] == ["a", "b", "c"]
    assert fq.get(timeout=0.01) is None


def test_key_in_processing_is_not_handed_out_again_until_done(fq: WorkQueue) -> None:
    fq.add("a")
    assert fq.get(0) == "a"
    fq.add("a")  # changed again while a worker holds it
    fq.add("a")
    assert len(fq) == 0
    assert fq.get(timeout=0.01) is None  # a second worker must not get it
    fq.done("a")
    assert len(fq) == 1
    assert fq.get(0) == "a"
    fq.done("a")
    assert fq.get(timeout=0.01) is None


def test_no_concurrent_processing_of_one_key(fq: WorkQueue) -> None:
    active: dict[str, int] = {}
    overlap: list[str] = []
    processed: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            key = fq.get(timeout=0.05)
            if key is None:
                continue
            with lock:
                active[key] = active.get(key, 0) + 1
                if active[key] > 1:
                    overlap.append(key)
            # give other workers a chance to (wrongly) pick the same key
            if len(processed) < 200:
                for _ in range(50):
                    fq.add(key)
            with lock:
                active[key] -= 1
                processed.append(key)
            fq.done(key)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(5):
        fq.add(f"k{i}")
    for _ in range(400):
        with lock:
            if len(processed) >= 200:
                break
        stop.wait(0.01)
    stop.set()
    for t in threads:
        t.join(5)
    assert not overlap
    assert len(processed) >= 200


def test_add_after_waits_for_the_fake_clock(fq: WorkQueue, clock: FakeClock) -> None:
    fq.add_after("late", 5.0)
    fq.add_after("later", 10.0)
    assert fq.get(timeout=0.05) is None
    clock.advance(4.9)
    assert fq.get(timeout=0.05) is None
    clock.advance(0.2)
    assert fq.get(timeout=5) == "late"
    assert fq.get(timeout=0.05) is None
    clock.advance(5)
    assert fq.get(timeout=5) == "later"


def test_add_after_keeps_the_earliest_time_and_dedups_with_add(fq: WorkQueue, clock: FakeClock) -> None:
    fq.add_after("k", 10.0)
    fq.add_after("k", 2.0)
    clock.advance(2.0)
    assert fq.get(timeout=5) == "k"
    fq.done("k")
    clock.advance(10.0)
    assert fq.get(timeout=0.1) is None  # the later schedule was superseded


def test_rate_limited_backoff_doubles_and_caps(fq: WorkQueue, clock: FakeClock) -> None:
    delays = []
    for _ in range(6):
        n = fq.num_requeues("k")
        fq.add_rate_limited("k")
        delays.append(min(1.0 * 2**n, 8.0))
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert fq.num_requeues("k") == 6
    fq.forget("k")
    assert fq.num_requeues("k") == 0
    # after forget the next delay starts at base again
    q2 = WorkQueue(clock=clock, base_delay=1.0, max_delay=8.0)
    try:
        q2.add_rate_limited("x")
        q2.add_rate_limited("y")
        q2.add_rate_limited("y")  # y: second failure, but "y" is already scheduled at +1
        assert q2.get(timeout=0.05) is None
        clock.advance(1.0)
        got = {q2.get(timeout=5), q2.get(timeout=5)}
        assert got == {"x", "y"}
    finally:
        q2.shutdown()


def test_rate_limited_second_failure_waits_twice_as_long(clock: FakeClock) -> None:
    q = WorkQueue(clock=clock, base_delay=1.0, max_delay=8.0)
    try:
        q.add_rate_limited("k")
        clock.advance(1.0)
        assert q.get(timeout=5) == "k"
        q.add_rate_limited("k")  # failed again while processing
        q.done("k")
        clock.advance(1.5)
        assert q.get(timeout=0.05) is None
        clock.advance(0.5)
        assert q.get(timeout=5) == "k"
    finally:
        q.shutdown()


def test_shutdown_wakes_blocked_getters(clock: FakeClock) -> None:
    q = WorkQueue(clock=clock)
    results: list[str | None] = []
    started = threading.Barrier(4)

    def getter() -> None:
        started.wait()
        results.append(q.get())

    threads = [threading.Thread(target=getter) for _ in range(3)]
    for t in threads:
        t.start()
    started.wait()
    q.add_after("never", 100)
    q.shutdown()
    for t in threads:
        t.join(5)
    assert results == [None, None, None]
    assert not any(t.is_alive() for t in threads)
    q.add("x")
    assert q.get(0) is None


def test_real_clock_add_after() -> None:
    q = WorkQueue()
    try:
        q.add_after("soon", 0.01)
        assert q.get(timeout=5) == "soon"
    finally:
        q.shutdown()
