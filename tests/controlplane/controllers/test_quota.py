"""ResourceQuota controller: status.hard/used follow objects as they come, change phase and go."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from nbk_workload_helpers import wait_for

from nbkube.client.informer import InformerFactory
from nbkube.controlplane.controllers.quota import QuotaController
from nbkube.errors import Forbidden
from nbkube.registry.admission_chain import default_admission_plugins
from nbkube.registry.registry import Registry
from nbkube.store import open_store


@pytest.fixture
def qapi() -> Iterator[Registry]:
    reg = Registry(open_store("sqlite://:memory:"), admission=default_admission_plugins())
    yield reg
    reg.close()


@pytest.fixture
def controller(qapi: Registry) -> Iterator[QuotaController]:
    factory = InformerFactory(qapi)
    # The real clock: a status write that loses a race with admission is retried after a few ms
    # (add_rate_limited), which a FakeClock nobody advances would postpone forever.
    ctl = QuotaController(qapi, factory)
    factory.start_all()
    assert factory.wait_all_synced(5)
    ctl.start()
    yield ctl
    ctl.stop()
    factory.stop_all()


def pod(name: str, cpu: str = "250m", memory: str = "64Mi") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}},
                }
            ]
        },
    }


def status_of(api: Registry, name: str = "compute") -> dict[str, Any]:
    return dict(api.get("ResourceQuota", name).get("status") or {})


def used_is(api: Registry, want: dict[str, str], name: str = "compute") -> bool:
    return status_of(api, name).get("used") == want


HARD = {"pods": "4", "requests.cpu": "1", "requests.memory": "1Gi", "limits.memory": "1Gi", "services": "2"}


def test_status_follows_creates_deletes_and_phases(qapi: Registry, controller: QuotaController) -> None:
    qapi.create(pod("early"))  # exists before the quota: counted on first sync
    qapi.create(
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute"}, "spec": {"hard": HARD}}
    )
    zero_svc = {
        "pods": "1",
        "requests.cpu": "250m",
        "requests.memory": "64Mi",
        "limits.memory": "64Mi",
        "services": "0",
    }
    wait_for(lambda: used_is(qapi, zero_svc), what="initial usage")
    assert status_of(qapi)["hard"] == HARD

    qapi.create(pod("a", cpu="500m"))
    qapi.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        }
    )
    two = {
        "pods": "2",
        "requests.cpu": "750m",
        "requests.memory": "128Mi",
        "limits.memory": "128Mi",
        "services": "1",
    }
    wait_for(lambda: used_is(qapi, two), what="usage after creates")

    qapi.delete("Pod", "a")
    qapi.delete("Service", "web")
    wait_for(lambda: used_is(qapi, zero_svc), what="usage after deletes")

    # a finished pod gives its quota back
    early = qapi.get("Pod", "early")
    early["status"] = {"phase": "Succeeded"}
    qapi.update_status(early)
    none = {"pods": "0", "requests.cpu": "0", "requests.memory": "0", "limits.memory": "0", "services": "0"}
    wait_for(lambda: used_is(qapi, none), what="usage after pod finished")


def test_hard_change_is_reflected_and_enforced(qapi: Registry, controller: QuotaController) -> None:
    qapi.create(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "compute"},
            "spec": {"hard": {"pods": "1"}},
        }
    )
    wait_for(lambda: used_is(qapi, {"pods": "0"}), what="initial usage")
    qapi.create(pod("one"))
    with pytest.raises(
        Forbidden, match="exceeded quota: compute, requested: pods=1, used: pods=1, limited: pods=1"
    ):
        qapi.create(pod("two"))
    qapi.patch("ResourceQuota", "compute", "default", {"spec": {"hard": {"pods": "2"}}})
    wait_for(lambda: status_of(qapi).get("hard") == {"pods": "2"}, what="hard updated")
    qapi.create(pod("two"))
    wait_for(lambda: used_is(qapi, {"pods": "2"}), what="usage 2")


def test_reconcile_directly_recounts_without_informers(qapi: Registry) -> None:
    # the pure path: one reconcile writes the recount even when no events arrived
    factory = InformerFactory(qapi)
    ctl = QuotaController(qapi, factory, resync=0)
    qapi.create(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "q"},
            "spec": {"hard": {"pods": "3"}},
        }
    )
    qapi.create(pod("p1"))
    q = qapi.get("ResourceQuota", "q")
    q["status"] = {"hard": {"pods": "3"}, "used": {"pods": "3"}}  # stale-high, as after deletes
    qapi.update_status(q)
    ctl.reconcile("default/q")
    assert status_of(qapi, "q") == {"hard": {"pods": "3"}, "used": {"pods": "1"}}
    rv = qapi.get("ResourceQuota", "q")["metadata"]["resourceVersion"]
    ctl.reconcile("default/q")  # nothing changed: no write
    assert qapi.get("ResourceQuota", "q")["metadata"]["resourceVersion"] == rv


def test_pod_updates_where_no_quota_counts_pods_compute_no_usage(
    qapi: Registry, controller: QuotaController, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every pod status write reaches the controller: without a quota it must cost nothing per pod
    import nbkube.controlplane.controllers.quota as quota_module

    computed: list[str] = []

    def counting_usage_of(obj: dict[str, Any], resources: Any) -> Any:
        computed.append(obj["metadata"]["name"])
        return {}

    monkeypatch.setattr(quota_module, "usage_of", counting_usage_of)
    old = qapi.create(pod("p"))
    new = {**old, "status": {"phase": "Running"}}
    controller._object_updated(old, new)
    assert computed == []
    qapi.create({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute"},
                 "spec": {"hard": {"requests.cpu": "1"}}})
    assert wait_for(lambda: controller.quotas.get("default/compute") is not None)
    controller._object_updated(old, new)
    assert computed == ["p", "p"]
