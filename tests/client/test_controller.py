"""Controller base: handlers enqueue, workers reconcile, failures retry with backoff, stop/restart."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from unittest.mock import patch

import pytest

from nbkube.client.controller import (
    COALESCE_MAX,
    CONFLICT_RETRIES_AT_INFO,
    Controller,
    only_status_changed,
)
from nbkube.client.informer import InformerFactory
from nbkube.clock import FakeClock
from nbkube.errors import Conflict
from nbkube.registry.registry import Registry


class LabelCopier(Controller):
    """Copies each ConfigMap's data["want"] into a label; fails the first `fail` times per key."""

    name = "label-copier"

    def __init__(self, api: Registry, factory: InformerFactory, clock: FakeClock, fail: int = 0):
        super().__init__(api, factory, clock=clock, workers=2)
        self.informer = factory.informer("ConfigMap")
        self.informer.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new))
        self.fail = fail
        self.attempts: dict[str, int] = {}
        self.reconciled: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()

    def reconcile(self, key: str) -> None:
        with self._lock:
            self.attempts[key] = self.attempts.get(key, 0) + 1
            attempt = self.attempts[key]
        if attempt <= self.fail:
            raise RuntimeError(f"boom {attempt}")
        obj = self.informer.get(key)
        if obj is not None:
            want = obj.get("data", {}).get("want", "")
            if obj["metadata"].get("labels", {}).get("copied") != want:
                ns, _, name = key.partition("/")
                self.api.patch("ConfigMap", name, ns, {"metadata": {"labels": {"copied": want}}})
        self.reconciled.put(key)


def cm(name: str, want: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"want": want},
    }


def test_reconcile_converges(api: Registry) -> None:
    clock = FakeClock()
    factory = InformerFactory(api)
    ctl = LabelCopier(api, factory, clock)
    factory.start_all()
    try:
        assert factory.wait_all_synced(5)
        ctl.start()
        api.create(cm("a", "x"))
        assert ctl.reconciled.get(timeout=5) == "default/a"
        assert api.get("ConfigMap", "a", "default")["metadata"]["labels"] == {"copied": "x"}
        assert ctl.queue.num_requeues("default/a") == 0
    finally:
        ctl.stop()
        factory.stop_all()


def test_failure_is_retried_with_backoff_then_forgotten(api: Registry) -> None:
    clock = FakeClock()
    factory = InformerFactory(api)
    ctl = LabelCopier(api, factory, clock, fail=2)
    factory.start_all()
    try:
        assert factory.wait_all_synced(5)
        ctl.start()
        api.create(cm("a", "y"))
        # first attempt fails at once; the retries wait 5 ms, then 10 ms of fake time
        for _ in range(500):
            if ctl.queue.num_requeues("default/a") == 1:
                break
            threading.Event().wait(0.01)
        assert ctl.queue.num_requeues("default/a") == 1
        assert ctl.reconciled.empty()
        clock.advance(0.005)
        for _ in range(500):
            if ctl.queue.num_requeues("default/a") == 2:
                break
            threading.Event().wait(0.01)
        assert ctl.reconciled.empty()
        clock.advance(0.010)
        assert ctl.reconciled.get(timeout=5) == "default/a"
        assert ctl.queue.num_requeues("default/a") == 0
        assert api.get("ConfigMap", "a", "default")["metadata"]["labels"] == {"copied": "y"}
    finally:
        ctl.stop()
        factory.stop_all()


def test_stop_and_restart(api: Registry) -> None:
    clock = FakeClock()
    factory = InformerFactory(api)
    ctl = LabelCopier(api, factory, clock)
    factory.start_all()
    try:
        assert factory.wait_all_synced(5)
        ctl.start()
        ctl.stop()
        assert not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("label-copier"))
        ctl.start()
        api.create(cm("b", "z"))
        assert ctl.reconciled.get(timeout=5) == "default/b"
    finally:
        ctl.stop()
        factory.stop_all()


def test_process_next_without_threads(api: Registry) -> None:
    factory = InformerFactory(api)
    ctl = LabelCopier(api, factory, FakeClock())
    ctl.queue.add("default/missing")
    assert ctl.process_next(timeout=1)
    assert ctl.reconciled.get_nowait() == "default/missing"
    assert not ctl.process_next(timeout=0.01)
    ctl.stop()


class Conflicted(Controller):
    """Raises a Conflict on its first attempt, as a write with a stale resourceVersion does."""

    name = "conflicted"

    def __init__(self, api: Registry, factory: InformerFactory) -> None:
        super().__init__(api, factory, clock=FakeClock())
        self.attempts = 0

    def reconcile(self, key: str) -> None:
        self.attempts += 1
        if self.attempts == 1:
            raise Conflict(f'configmaps "{key}": the object has been modified')


def test_a_conflict_is_one_line_and_a_requeue_not_a_traceback(
    api: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    ctl = Conflicted(api, InformerFactory(api))
    ctl.queue.add("default/a")
    with caplog.at_level(logging.DEBUG, logger="nbkube.controller.conflicted"):
        assert ctl.process_next(timeout=1)
    assert ctl.queue.num_requeues("default/a") == 1
    (record,) = caplog.records  # one line, through logutil's rate-limited transient failures
    assert record.exc_info is None and "(conflict)" in record.message and "retry 1" in record.message
    assert record.levelno == logging.INFO  # expected: no red box under a notebook cell
    ctl.stop()


class AlwaysConflicted(Controller):
    """Conflicts on every attempt, as against a writer that keeps changing the object."""

    name = "always-conflicted"

    def reconcile(self, key: str) -> None:
        raise Conflict(f'configmaps "{key}": the object has been modified')


def test_a_conflict_that_keeps_coming_back_becomes_a_warning(
    api: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    ctl = AlwaysConflicted(api, InformerFactory(api), clock=clock)
    ctl.queue.add("default/a")
    levels: list[int] = []
    # every line admitted: logutil's rate limit (one line per cause a window) is not under test
    with caplog.at_level(logging.DEBUG, logger="nbkube.controller.always-conflicted"), patch(
        "nbkube.logutil._limiter.admit", return_value=0
    ):
        for _ in range(CONFLICT_RETRIES_AT_INFO + 1):
            caplog.clear()
            clock.advance(ctl.queue.max_delay)  # the back-off of the last conflict is over
            assert ctl.process_next(timeout=5)
            (record,) = caplog.records
            levels.append(record.levelno)
    assert levels == [logging.INFO] * CONFLICT_RETRIES_AT_INFO + [logging.WARNING]
    ctl.stop()


def test_only_status_changed() -> None:
    old = {"metadata": {"name": "a", "resourceVersion": "1", "labels": {"x": "1"}}, "spec": {"n": 1}}
    status = {**old, "metadata": {**old["metadata"], "resourceVersion": "2"}, "status": {"ready": 1}}
    assert only_status_changed(old, status)
    assert not only_status_changed(old, {**old, "spec": {"n": 2}})
    relabelled = {**old, "metadata": {**old["metadata"], "labels": {"x": "2"}}}
    assert not only_status_changed(old, relabelled)


def test_enqueue_coalesced_delays_in_proportion_to_the_last_reconcile(
    api: Registry, clock: FakeClock
) -> None:
    factory = InformerFactory(api)
    ctl = LabelCopier(api, factory, clock)
    try:
        # a key never reconciled (or cheap to reconcile) is queued at once, as enqueue does
        ctl.enqueue_coalesced("default/cheap")
        assert len(ctl.queue) == 1
        # one whose last pass cost 0.1 s waits 4 x that; one that cost 10 s waits at most the cap
        ctl._cost["default/hot"] = 0.1
        ctl._cost["default/huge"] = 10.0
        ctl.enqueue_coalesced("default/hot")
        ctl.enqueue_coalesced("default/huge")
        assert len(ctl.queue) == 1
        clock.advance(0.4)
        ctl.queue._wake.set()
        wait_until(lambda: len(ctl.queue) == 2)
        clock.advance(COALESCE_MAX)
        ctl.queue._wake.set()
        wait_until(lambda: len(ctl.queue) == 3)
    finally:
        ctl.queue.shutdown()


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if cond():
            return
        done.wait(0.01)
    raise AssertionError("condition not reached")
