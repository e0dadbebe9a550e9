"""ResourceQuota admission: rejections name quota and resource, charges are CAS-safe, nothing partial."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from nbkube.errors import AlreadyExists, Forbidden, NotFound
from nbkube.registry.admission_chain import default_admission_plugins
from nbkube.registry.admission_service import allocated_ips
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


def quota(name: str, **hard: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name},
        "spec": {"hard": {k.replace("_", "."): v for k, v in hard.items()}},
    }


def pod(name: str, cpu: str | None = "500m", memory: str | None = None) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container: dict[str, Any] = {"name": "c", "image": "busybox"}
    if requests:
        container["resources"] = {"requests": requests}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container]},
    }


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}]},
    }


def used(api: Registry, name: str) -> dict[str, str]:
    return dict(api.get("ResourceQuota", name)["status"]["used"])


def test_cpu_quota_message_like_kubernetes(api: Registry) -> None:
    api.create(quota("compute-quota", requests_cpu="4"))
    api.create(pod("a", cpu="3"))
    with pytest.raises(Forbidden) as exc:
        api.create(pod("b", cpu="2"))
    assert str(exc.value) == (
        'pods "b" is forbidden: exceeded quota: compute-quota, requested: requests.cpu=2, '
        "used: requests.cpu=3, limited: requests.cpu=4"
    )
    with pytest.raises(NotFound):
        api.get("Pod", "b")
    assert used(api, "compute-quota") == {"requests.cpu": "3"}
    api.create(pod("c", cpu="1"))  # exactly at the limit is allowed
    assert used(api, "compute-quota") == {"requests.cpu": "4"}


def test_pods_services_rc_counts(api: Registry) -> None:
    api.create(quota("counts", pods="2", services="1", replicationcontrollers="1"))
    api.create(pod("p1"))
    api.create(pod("p2"))
    with pytest.raises(
        Forbidden, match="exceeded quota: counts, requested: pods=1, used: pods=2, limited: pods=2"
    ):
        api.create(pod("p3"))
    api.create(service("s1"))
    with pytest.raises(Forbidden, match="services=1, used: services=1, limited: services=1"):
        api.create(service("s2"))
    # the refused Service's ClusterIP was rolled back: nothing partial is left
    assert len(allocated_ips(api.store)) == 1
    rc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "rc1"},
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }
    api.create(rc)
    rc["metadata"]["name"] = "rc2"
    with pytest.raises(Forbidden, match="replicationcontrollers"):
        api.create(rc)
    assert used(api, "counts") == {"pods": "2", "services": "1", "replicationcontrollers": "1"}


def test_memory_and_limits_and_count_resources(api: Registry) -> None:
    api.create(quota("mem", memory="1Gi", **{"count/configmaps": "1"}))
    api.create(pod("m1", cpu=None, memory="768Mi"))
    with pytest.raises(Forbidden, match=r"requested: memory=512Mi, used: memory=768Mi, limited: memory=1Gi"):
        api.create(pod("m2", cpu=None, memory="512Mi"))
    cm: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm1"},
        "data": {"a": "b"},
    }
    api.create(cm)
    cm["metadata"]["name"] = "cm2"
    with pytest.raises(Forbidden, match="count/configmaps"):
        api.create(cm)


def test_pod_without_requests_is_refused_when_compute_is_quotaed(api: Registry) -> None:
    api.create(quota("compute-quota", requests_cpu="4", limits_memory="1Gi"))
    with pytest.raises(Forbidden) as exc:
        api.create(pod("bare", cpu=None))
    assert "failed quota: compute-quota: must specify limits.memory,requests.cpu" in str(exc.value)
    with pytest.raises(NotFound):
        api.get("Pod", "bare")


def test_other_namespaces_and_kinds_unaffected(api: Registry) -> None:
    api.create(quota("pods-only", pods="1"))
    api.create(pod("p1"))
    api.create(service("svc-is-not-counted"))
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    p = pod("p2")
    p["metadata"]["namespace"] = "other"
    api.create(p)


def test_failed_write_takes_charge_back(api: Registry) -> None:
    api.create(quota("q", pods="5"))
    api.create(pod("same"))
    assert used(api, "q") == {"pods": "1"}
    with pytest.raises(AlreadyExists):
        api.create(pod("same"))  # charged at admission, then the write fails
    assert used(api, "q") == {"pods": "1"}


def test_delete_gives_usage_back_without_controller(api: Registry) -> None:
    api.create(quota("q", pods="1", requests_cpu="1"))
    api.create(pod("p1"))
    assert used(api, "q") == {"pods": "1", "requests.cpu": "500m"}
    api.delete("Pod", "p1")
    assert used(api, "q") == {"pods": "0", "requests.cpu": "0"}
    api.create(pod("p2"))
    assert used(api, "q") == {"pods": "1", "requests.cpu": "500m"}


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_creates_never_exceed(store: Store, round_: int) -> None:
    # two registries with their own plugins, as two processes sharing one store would be
    apis = [Registry(store, admission=default_admission_plugins()) for _ in range(2)]
    apis[0].create(quota("q", pods="5", requests_cpu="10"))
    ok: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        for i in range(4):
            name = f"t{t}-{i}"
            try:
                apis[t % 2].create(pod(name, cpu="100m"))
            except Forbidden:
                with lock:
                    refused.append(name)
            else:
                with lock:
                    ok.append(name)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert len(ok) == 5
    assert len(refused) == 11
    items, _ = apis[0].list("Pod", "default")
    assert sorted(p["metadata"]["name"] for p in items) == sorted(ok)
    assert used(apis[0], "q") == {"pods": "5", "requests.cpu": "500m"}
