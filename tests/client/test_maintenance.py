"""Maintenance mode: cordon/uncordon flip spec.unschedulable (CAS, Event); drain refuses bare pods
without force, evicts controller pods (the real RC controller recreates them elsewhere), waits for
them to go, and reports what moved."""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from nbkube.api.meta import Obj
from nbkube.client.informer import InformerFactory
from nbkube.client.maintenance import DrainRefused, DrainTimeout, EvictedPod, cordon, drain, uncordon
from nbkube.clock import FakeClock
from nbkube.controlplane.controllers.replication import ReplicationManager
from nbkube.controlplane.scheduler.scheduler import Scheduler
from nbkube.errors import Conflict, NotFound
from nbkube.registry.registry import Registry

NODES = ("node-1", "node-2")


class SteppingClock(FakeClock):
    """A fake clock whose sleep moves time itself, so timeouts run out without real waiting."""

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)


def wait_for(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    # the RC controller and the binder run in threads: poll (bounded) for the state they reach
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


class Binder:
    """Stands in for the scheduler: binds each unbound pod to the first schedulable node."""

    def __init__(self, api: Registry):
        self.api = api
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-binder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            nodes = [n for n in self.api.list("Node")[0] if not (n.get("spec") or {}).get("unschedulable")]
            for pod in self.api.list("Pod")[0]:
                if nodes and not pod["spec"].get("nodeName"):
                    new = copy.deepcopy(pod)
                    new["spec"]["nodeName"] = nodes[0]["metadata"]["name"]
                    with contextlib.suppress(Conflict, NotFound):
                        self.api.update(new)
            self._stop.wait(0.01)


@pytest.fixture
def nodes(api: Registry) -> list[str]:
    for name in NODES:
        api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    return list(NODES)


def bare_pod(name: str, node: str, **extra: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}], **extra},
    }


def pods_on(api: Registry, node: str) -> list[str]:
    return sorted(p["metadata"]["name"] for p in api.list("Pod", field_selector={"spec.nodeName": node})[0])


def events(api: Registry, reason: str) -> list[Obj]:
    return [e for e in api.list("Event")[0] if e.get("reason") == reason]


def test_cordon_and_uncordon(api: Registry, nodes: list[str]) -> None:
    assert cordon(api, "node-1") is True
    assert api.get("Node", "node-1")["spec"]["unschedulable"] is True
    assert cordon(api, "node-1") is False  # already cordoned: no write
    assert len(events(api, "NodeNotSchedulable")) == 1
    assert uncordon(api, "node-1") is True
    assert not api.get("Node", "node-1").get("spec", {}).get("unschedulable")
    assert uncordon(api, "node-1") is False
    assert events(api, "NodeSchedulable")[0]["involvedObject"]["name"] == "node-1"
    with pytest.raises(NotFound):
        cordon(api, "no-such-node")


def test_drain_refuses_bare_pods_without_force(api: Registry, nodes: list[str]) -> None:
    api.create(bare_pod("bare", "node-1"))
    api.create(bare_pod("other-node", "node-2"))
    with pytest.raises(DrainRefused) as exc:
        drain(api, "node-1")
    assert str(exc.value) == (
        "cannot delete Pods not managed by ReplicationController, ReplicaSet, Job, DaemonSet or "
        "StatefulSet (use --force to override): default/bare"
    )
    assert exc.value.report.evicted == []
    assert pods_on(api, "node-1") == ["bare"]  # nothing evicted
    assert api.get("Node", "node-1")["spec"]["unschedulable"] is True  # but cordoned, as kubectl


def test_drain_force_deletes_bare_pod_and_skips_mirror(api: Registry, nodes: list[str]) -> None:
    api.create(bare_pod("bare", "node-1"))
    mirror = bare_pod("static", "node-1")
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "x"}
    api.create(mirror)
    report = drain(api, "node-1", force=True)
    assert report.evicted == [EvictedPod("default", "bare")]
    assert report.moved() == []
    assert report.ignored == [("default/static", "mirror pod (managed by its node, not the API)")]
    assert any("default/bare" in w for w in report.warnings)
    assert pods_on(api, "node-1") == ["static"]


def test_drain_refuses_emptydir_and_orphans_of_missing_controllers(api: Registry, nodes: list[str]) -> None:
    orphan = bare_pod("orphan", "node-1")
    orphan["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "name": "gone",
            "uid": "u-1",
            "controller": True,
        }
    ]
    api.create(orphan)
    with pytest.raises(DrainRefused, match="not managed by .*: default/orphan"):
        drain(api, "node-1")
    api.delete("Pod", "orphan")
    api.create(bare_pod("scratch", "node-1", volumes=[{"name": "tmp", "emptyDir": {}}]))
    with pytest.raises(
        DrainRefused, match=r"local storage \(use --delete-emptydir-data to override\): default/scratch"
    ):
        drain(api, "node-1", force=True)
    report = drain(api, "node-1", force=True, delete_emptydir_data=True)
    assert [p.key for p in report.evicted] == ["default/scratch"]


def test_drain_moves_controller_pods_and_node_takes_no_new_pods(api: Registry, nodes: list[str]) -> None:
    factory = InformerFactory(api)
    rcm = ReplicationManager(api, factory)
    binder = Binder(api)
    factory.start_all()
    try:
        assert factory.wait_all_synced(5)
        rcm.start()
        binder.start()
        api.create(
            {
                "apiVersion": "v1",
                "kind": "ReplicationController",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {
                    "replicas": 3,
                    "selector": {"app": "web"},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                    },
                },
            }
        )
        # the binder puts everything on node-1 (first schedulable)
        wait_for(lambda: len(pods_on(api, "node-1")) == 3, what="3 pods on node-1")
        before = set(pods_on(api, "node-1"))
        printed: list[str] = []
        report = drain(api, "node-1", timeout=10, on_evict=lambda p: printed.append(p.key))
        assert report.cordoned is True
        assert sorted(p.name for p in report.evicted) == sorted(before)
        assert all(p.owner_kind == "ReplicationController" and p.owner_name == "web" for p in report.moved())
        assert sorted(printed) == sorted(f"default/{n}" for n in before)
        assert len(events(api, "Evicted")) == 3
        # the controller recreates them; the binder (like the scheduler) skips the cordoned node
        wait_for(lambda: len(pods_on(api, "node-2")) == 3, what="3 replacement pods on node-2")
        assert pods_on(api, "node-1") == []
        assert api.get("Node", "node-1")["spec"]["unschedulable"] is True
        assert not set(pods_on(api, "node-2")) & before
        uncordon(api, "node-1")
        assert not api.get("Node", "node-1").get("spec", {}).get("unschedulable")
    finally:
        binder.stop()
        rcm.stop()
        factory.stop_all()


class SlowDelete:
    """A registry whose deletes and evictions never complete (as a pod stuck terminating would be)."""

    def __init__(self, api: Registry):
        self._api = api

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    def delete(self, kind: str, name: str, namespace: str = "", **kw: Any) -> Obj:
        return self._api.get(kind, name, namespace)

    def evict(self, name: str, namespace: str = "", **kw: Any) -> Obj:
        return self._api.get("Pod", name, namespace)


def test_drain_timeout_lists_pods_still_there(api: Registry, nodes: list[str]) -> None:
    api.create(bare_pod("stuck", "node-1"))
    with pytest.raises(DrainTimeout) as exc:
        drain(SlowDelete(api), "node-1", force=True, timeout=30, clock=SteppingClock())  # type: ignore[arg-type]
    assert str(exc.value) == "drain node/node-1 timed out after 30s waiting for 1 pod(s) to go: default/stuck"
    assert exc.value.remaining == ["default/stuck"]


def test_drain_with_real_scheduler_keeps_cordoned_node_empty(api: Registry) -> None:
    for name in NODES:
        node = api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
        node["status"] = {
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        }
        api.update_status(node)
    factory = InformerFactory(api)
    rcm = ReplicationManager(api, factory)
    scheduler = Scheduler(api, factory)
    factory.start_all()
    try:
        assert factory.wait_all_synced(5)
        rcm.start()
        scheduler.start()
        api.create(
            {
                "apiVersion": "v1",
                "kind": "ReplicationController",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {
                    "replicas": 4,
                    "selector": {"app": "web"},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                    },
                },
            }
        )
        wait_for(lambda: len(pods_on(api, "node-1")) + len(pods_on(api, "node-2")) == 4, what="4 bound pods")
        on_node_1 = pods_on(api, "node-1")
        report = drain(api, "node-1", timeout=10)
        assert sorted(p.name for p in report.moved()) == on_node_1
        wait_for(lambda: len(pods_on(api, "node-2")) == 4, what="all 4 pods on node-2")
        assert pods_on(api, "node-1") == []
        # more replicas while cordoned: none lands on node-1
        api.patch("ReplicationController", "web", "default", {"spec": {"replicas": 6}})
        wait_for(lambda: len(pods_on(api, "node-2")) == 6, what="6 pods on node-2")
        assert pods_on(api, "node-1") == []
    finally:
        scheduler.stop()
        rcm.stop()
        factory.stop_all()
