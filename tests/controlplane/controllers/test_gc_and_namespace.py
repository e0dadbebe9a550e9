"""Garbage collection by ownerReferences (background and orphan propagation) and namespace cascade."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from nbk_workload_helpers import active_pods, gone, rc_manifest, started, wait_for

from nbkube.api.meta import controller_of
from nbkube.client.informer import InformerFactory
from nbkube.controlplane.controllers.gc import GarbageCollector
from nbkube.controlplane.controllers.namespace import NamespaceController
from nbkube.controlplane.controllers.replication import ReplicationManager
from nbkube.registry.registry import Registry


@pytest.fixture
def running(api: Registry, factory: InformerFactory) -> Iterator[tuple[ReplicationManager, GarbageCollector]]:
    rc = ReplicationManager(api, factory)
    gc = GarbageCollector(api, factory)
    ns = NamespaceController(api, factory)
    with started(factory, rc, gc, ns):
        yield rc, gc


def test_deleting_an_rc_collects_its_pods(api: Registry, running: object) -> None:
    api.create(rc_manifest(replicas=3))
    wait_for(lambda: len(active_pods(api)) == 3)
    api.delete("ReplicationController", "nginx", "default")
    wait_for(lambda: not active_pods(api), what="pods collected")


def test_orphan_propagation_keeps_pods(api: Registry, running: object) -> None:
    api.create(rc_manifest(replicas=3))
    wait_for(lambda: len(active_pods(api)) == 3)
    api.delete("ReplicationController", "nginx", "default", propagation="Orphan")
    # Waited for, not read at once: a create the RC controller had in flight when the RC went may
    # still land, with an owner that is gone, until the garbage collector takes it away.
    wait_for(
        lambda: (lambda pods: len(pods) == 3 and all(controller_of(p) is None for p in pods))(
            active_pods(api)
        ),
        what="3 orphaned pods",
    )
    # a new RC with the same selector adopts them instead of making new ones
    rc2 = api.create(rc_manifest(name="nginx2", replicas=3))
    wait_for(
        lambda: all((controller_of(p) or {}).get("uid") == rc2["metadata"]["uid"] for p in active_pods(api))
    )
    assert len(active_pods(api)) == 3


def test_gc_removes_only_dangling_refs_when_an_owner_remains(api: Registry, running: object) -> None:
    a = api.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "default"}}
    )
    b = api.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "default"}}
    )
    refs = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": o["metadata"]["name"], "uid": o["metadata"]["uid"]}
        for o in (a, b)
    ]
    api.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "dep", "namespace": "default", "ownerReferences": refs},
        }
    )
    api.delete("ConfigMap", "a", "default")
    wait_for(
        lambda: len(api.get("ConfigMap", "dep", "default")["metadata"].get("ownerReferences") or []) == 1
    )
    api.delete("ConfigMap", "b", "default")
    wait_for(lambda: gone(api, "ConfigMap", "dep"), what="dependent collected")


def test_a_dependent_is_checked_when_its_references_change_not_on_every_update(
    api: Registry, running: tuple[ReplicationManager, GarbageCollector], monkeypatch: pytest.MonkeyPatch
) -> None:
    gc = running[1]
    checked: list[str] = []
    real = gc.reconcile
    monkeypatch.setattr(gc, "reconcile", lambda key: (checked.append(key), real(key))[1])
    owner = api.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner", "namespace": "default"}}
    )
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    dep = api.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "dep", "namespace": "default", "ownerReferences": [ref]},
        }
    )
    wait_for(lambda: checked.count("ConfigMap|default/dep") == 1, what="the new dependent checked")
    for i in range(3):  # its owner stays: nothing new to check
        dep = api.update({**dep, "data": {"n": str(i)}})
    cache = gc.informers["ConfigMap"]
    wait_for(lambda: (cache.get("default/dep") or {}).get("data") == {"n": "2"}, what="the updates seen")
    time.sleep(0.3)  # time for a check, were one queued
    assert checked.count("ConfigMap|default/dep") == 1
    gone_ref = {**ref, "name": "gone", "uid": "no-such-uid"}
    api.update({**dep, "metadata": {**dep["metadata"], "ownerReferences": [gone_ref]}})
    wait_for(
        lambda: gone(api, "ConfigMap", "dep"), what="the dependent whose new owner does not exist collected"
    )


def test_namespace_deletion_cascades(api: Registry, running: object) -> None:
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    rc = rc_manifest(replicas=2)
    rc["metadata"]["namespace"] = "team"
    api.create(rc)
    api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "team"}})
    api.create(rc_manifest(replicas=1))  # in "default": must survive
    wait_for(lambda: len(active_pods(api, "team")) == 2 and len(active_pods(api)) == 1)
    api.delete("Namespace", "team")
    wait_for(
        lambda: (
            not api.list("Pod", "team")[0]
            and not api.list("ReplicationController", "team")[0]
            and not api.list("ConfigMap", "team")[0]
        ),
        what="namespace emptied",
    )
    assert len(active_pods(api)) == 1
    assert api.get("ReplicationController", "nginx", "default")


def test_namespace_sweep_on_start(api: Registry, factory: InformerFactory) -> None:
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gone"}})
    api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "gone"}})
    api.delete("Namespace", "gone")  # no controller running
    ctl = NamespaceController(api, factory)
    assert ctl.orphaned_namespaces() == {"gone"}
    factory.start_all()
    ctl.start()
    try:
        wait_for(lambda: not api.list("ConfigMap", "gone")[0])
    finally:
        ctl.stop()
