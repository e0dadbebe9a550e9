"""Controller base: handlers enqueue, workers reconcile, failures retry with backoff, stop/restart."""

from __future__ import annotations

import logging
import queue
import threading

import pytest

from nbkube.client.controller import Controller
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
    ctl.stop()
