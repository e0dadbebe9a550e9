"""Registry dry runs: validated, defaulted and admitted as for real, nothing written, no admission
side effect left behind (allocated ClusterIPs/NodePorts and quota charges are given back)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from nbkube.errors import AlreadyExists, Conflict, Forbidden, Invalid, NotFound
from nbkube.registry.admission_chain import default_admission_plugins
from nbkube.registry.admission_service import allocated_ips, allocated_node_ports
from nbkube.registry.registry import Registry
from nbkube.store import open_store
from nbkube.store.base import Store


@pytest.fixture
def store() -> Iterator[Store]:
    s = open_store("sqlite://:memory:")
    yield s
    s.close()


@pytest.fixture
def api(store: Store) -> Registry:
    return Registry(store, admission=default_admission_plugins())


def svc(name: str, node_port: int | None = None) -> dict[str, Any]:
    port: dict[str, Any] = {"port": 80}
    if node_port:
        port["nodePort"] = node_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": "NodePort", "selector": {"app": name}, "ports": [port]},
    }


def pod(name: str, cpu: str = "500m") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}]},
    }


def test_dry_run_create_returns_admitted_object_and_writes_nothing(api: Registry) -> None:
    out = api.create(svc("web", 30001), dry_run=True)
    assert out["spec"]["clusterIP"] and out["spec"]["ports"][0]["nodePort"] == 30001
    assert out["spec"]["ports"][0]["protocol"] == "TCP"  # defaulted
    assert out["metadata"]["uid"] and out["metadata"]["creationTimestamp"]
    assert "resourceVersion" not in out["metadata"]
    assert api.list("Service")[0] == []
    assert allocated_ips(api.store) == [] and allocated_node_ports(api.store) == []
    # the port the dry run showed is still free for a real create
    assert api.create(svc("web", 30001))["spec"]["ports"][0]["nodePort"] == 30001


def test_dry_run_create_still_refuses_what_a_create_would(api: Registry) -> None:
    api.create(svc("web", 30001))
    with pytest.raises(AlreadyExists):
        api.create(svc("web"), dry_run=True)
    with pytest.raises(Invalid):
        api.create(svc("other", 30001), dry_run=True)  # port taken
    bad = pod("p")
    del bad["spec"]["containers"][0]["image"]
    with pytest.raises(Invalid):
        api.create(bad, dry_run=True)
    with pytest.raises(NotFound):
        api.create({**pod("p"), "metadata": {"name": "p", "namespace": "nowhere"}}, dry_run=True)
    assert allocated_node_ports(api.store) == [30001]


def test_dry_run_create_in_missing_auto_namespace_does_not_create_it(api: Registry) -> None:
    api.create({**pod("p"), "metadata": {"name": "p", "namespace": "kube-system"}}, dry_run=True)
    assert api.list("Namespace")[0] == []


def test_dry_run_create_is_charged_against_quota_and_charge_rolled_back(api: Registry) -> None:
    api.create(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "q"},
            "spec": {"hard": {"pods": "1"}},
        }
    )
    api.create(pod("a"), dry_run=True)
    after = api.get("ResourceQuota", "q", "default")
    assert (after.get("status") or {}).get("used", {}).get("pods", "0") == "0"
    api.create(pod("a"))
    with pytest.raises(Forbidden):
        api.create(pod("b"), dry_run=True)


def test_dry_run_update_and_mutate_write_nothing(api: Registry) -> None:
    created = api.create(svc("web"))
    rv = created["metadata"]["resourceVersion"]
    rev = api.store.current_revision()
    changed = {**created, "metadata": {**created["metadata"], "labels": {"x": "y"}}}
    out = api.update(changed, dry_run=True)
    assert out["metadata"]["labels"] == {"x": "y"} and out["metadata"]["resourceVersion"] == rv
    out = api.mutate(
        "Service",
        "web",
        "default",
        lambda o: {**o, "spec": {**o["spec"], "sessionAffinity": "ClientIP"}},
        dry_run=True,
    )
    assert out["spec"]["sessionAffinity"] == "ClientIP"
    assert api.store.current_revision() == rev
    assert api.get("Service", "web", "default") == created
    assert allocated_node_ports(api.store) == [created["spec"]["ports"][0]["nodePort"]]
    # a dry-run change to a new node port claims and gives it back
    out = api.mutate(
        "Service",
        "web",
        "default",
        lambda o: {**o, "spec": {**o["spec"], "ports": [{**o["spec"]["ports"][0], "nodePort": 30999}]}},
        dry_run=True,
    )
    assert out["spec"]["ports"][0]["nodePort"] == 30999
    assert allocated_node_ports(api.store) == [created["spec"]["ports"][0]["nodePort"]]
    stale = {**changed, "metadata": {**changed["metadata"], "resourceVersion": "1"}}
    with pytest.raises(Conflict):
        api.update(stale, dry_run=True)


def test_dry_run_update_status_writes_nothing(api: Registry) -> None:
    created = api.create(pod("p"))
    rev = api.store.current_revision()
    out = api.update_status({**created, "status": {"phase": "Running"}}, dry_run=True)
    assert out["status"]["phase"] == "Running"
    assert api.store.current_revision() == rev


def test_dry_run_delete_keeps_object_and_allocations(api: Registry) -> None:
    created = api.create(svc("web", 30001))
    rev = api.store.current_revision()
    out = api.delete("Service", "web", "default", dry_run=True)
    assert out["metadata"]["uid"] == created["metadata"]["uid"]
    assert api.get("Service", "web", "default") == created
    assert allocated_node_ports(api.store) == [30001] and allocated_ips(api.store) == [
        created["spec"]["clusterIP"]
    ]
    assert api.store.current_revision() == rev
    with pytest.raises(NotFound):
        api.delete("Service", "missing", "default", dry_run=True)
    with pytest.raises(Conflict):
        api.delete("Service", "web", "default", resource_version="1", dry_run=True)


def test_dry_run_orphan_delete_leaves_dependents_owned(api: Registry) -> None:
    owner = api.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}, "data": {"a": "b"}}
    )
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    api.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dep", "ownerReferences": [ref]}}
    )
    api.delete("ConfigMap", "owner", "default", propagation="Orphan", dry_run=True)
    assert api.get("ConfigMap", "dep", "default")["metadata"]["ownerReferences"] == [ref]
    assert "deletionTimestamp" not in api.get("ConfigMap", "owner", "default")["metadata"]
