"""ClusterIP / NodePort allocation at admission: unique, persisted per key, released, rolled back."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from nbkube.clock import FakeClock
from nbkube.errors import AlreadyExists, Forbidden, Invalid
from nbkube.registry.admission_chain import default_admission_plugins
from nbkube.registry.admission_service import (
    DNS_SERVICE_IP,
    IP_PREFIX,
    ServiceAllocator,
    allocated_ips,
    allocated_node_ports,
    repair_allocations,
)
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
    # closing the store (fixture above) is enough; Registry.close would close it twice
    return Registry(store, admission=default_admission_plugins())


def svc(name: str, *, type: str = "ClusterIP", node_port: int | None = None, **spec: Any) -> dict[str, Any]:
    port: dict[str, Any] = {"port": 80, "targetPort": 8080}
    if node_port is not None:
        port["nodePort"] = node_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": type, "selector": {"app": name}, "ports": [port], **spec},
    }


def test_cluster_ip_allocated_from_service_cidr_and_persisted(api: Registry) -> None:
    created = api.create(svc("web"))
    ip = created["spec"]["clusterIP"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/12")
    assert created["spec"]["clusterIPs"] == [ip]
    assert api.get("Service", "web")["spec"]["clusterIP"] == ip
    assert allocated_ips(api.store) == [ip]
    kv = api.store.get(IP_PREFIX + ip)
    assert kv is not None and b"default/web" in kv.value


def test_article_service_gets_requested_node_port_30001(api: Registry) -> None:
    created = api.create(svc("nginx-http-service", type="NodePort", node_port=30001))
    assert created["spec"]["ports"][0]["nodePort"] == 30001
    assert allocated_node_ports(api.store) == [30001]


def test_node_port_auto_allocated_in_range(api: Registry) -> None:
    created = api.create(svc("auto", type="NodePort"))
    port = created["spec"]["ports"][0]["nodePort"]
    assert 30000 <= port <= 32767
    assert allocated_node_ports(api.store) == [port]


def test_headless_and_external_name_get_no_ip(api: Registry) -> None:
    assert api.create(svc("headless", clusterIP="None"))["spec"]["clusterIP"] == "None"
    ext = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "ext"},
        "spec": {"type": "ExternalName", "externalName": "example.invalid"},
    }
    assert "clusterIP" not in api.create(ext)["spec"]
    assert allocated_ips(api.store) == []


def test_requested_port_taken_is_clear_error_and_nothing_written(api: Registry) -> None:
    api.create(svc("first", type="NodePort", node_port=30001))
    ips_before = allocated_ips(api.store)
    with pytest.raises(Invalid) as exc:
        api.create(svc("second", type="NodePort", node_port=30001))
    assert "spec.ports[0].nodePort: Invalid value: 30001: provided port is already allocated" in str(
        exc.value
    )
    with pytest.raises(Exception, match="not found"):
        api.get("Service", "second")
    # the ClusterIP claimed for "second" before its port was refused was given back
    assert allocated_ips(api.store) == ips_before
    assert allocated_node_ports(api.store) == [30001]


def test_requested_ip_must_be_in_range_and_free(api: Registry) -> None:
    with pytest.raises(Invalid, match=r"spec.clusterIP: .*not in the valid range.*10.96.0.0/12"):
        api.create(svc("outside", clusterIP="10.0.0.5"))
    assert api.create(svc("pinned", clusterIP="10.96.0.10"))["spec"]["clusterIP"] == "10.96.0.10"
    with pytest.raises(Invalid, match="provided IP is already allocated"):
        api.create(svc("again", clusterIP="10.96.0.10"))
    assert allocated_ips(api.store) == ["10.96.0.10"]


def test_release_on_delete_and_reuse(api: Registry) -> None:
    api.create(svc("a", type="NodePort", node_port=30005, clusterIP="10.96.0.20"))
    api.delete("Service", "a")
    assert allocated_ips(api.store) == []
    assert allocated_node_ports(api.store) == []
    again = api.create(svc("b", type="NodePort", node_port=30005, clusterIP="10.96.0.20"))
    assert again["spec"]["clusterIP"] == "10.96.0.20"
    assert again["spec"]["ports"][0]["nodePort"] == 30005


def test_small_range_is_reused_after_release_and_full_is_refused(store: Store) -> None:
    api = Registry(store, admission=[ServiceAllocator("10.96.0.0/29", (30000, 30001), seed=1)])
    ips = {api.create(svc(f"s{i}"))["spec"]["clusterIP"] for i in range(6)}  # 8 addresses - 2
    assert len(ips) == 6
    with pytest.raises(Forbidden, match="failed to allocate a serviceIP: range is full"):
        api.create(svc("full"))
    freed = api.get("Service", "s3")["spec"]["clusterIP"]
    api.delete("Service", "s3")
    assert api.create(svc("next"))["spec"]["clusterIP"] == freed


def test_failed_write_rolls_back_allocation(api: Registry) -> None:
    api.create(svc("dup", type="NodePort"))
    held = (allocated_ips(api.store), allocated_node_ports(api.store))
    with pytest.raises(AlreadyExists):
        api.create(svc("dup", type="NodePort"))  # admitted (new IP and port), then the write fails
    assert (allocated_ips(api.store), allocated_node_ports(api.store)) == held


def test_update_keeps_allocations_and_type_change_releases_ports(api: Registry) -> None:
    created, action = api.apply([svc("web", type="NodePort")])[0]
    assert action == "created"
    ip, port = created["spec"]["clusterIP"], created["spec"]["ports"][0]["nodePort"]
    # a re-applied manifest without clusterIP/nodePort keeps them and writes nothing
    assert api.apply([svc("web", type="NodePort")])[0][1] == "unchanged"
    assert allocated_node_ports(api.store) == [port]
    assert api.get("Service", "web")["spec"]["ports"][0]["nodePort"] == port
    cur = api.get("Service", "web")
    cur["spec"]["type"] = "ClusterIP"
    del cur["spec"]["ports"][0]["nodePort"]
    del cur["spec"]["externalTrafficPolicy"]
    updated = api.update(cur)
    assert updated["spec"]["clusterIP"] == ip
    assert allocated_node_ports(api.store) == []
    # and back to NodePort allocates a port again
    cur = api.get("Service", "web")
    cur["spec"]["type"] = "NodePort"
    again = api.update(cur)
    assert allocated_node_ports(api.store) == [again["spec"]["ports"][0]["nodePort"]]
    assert allocated_ips(api.store) == [ip]


def test_concurrent_creates_from_threads_never_share(store: Store) -> None:
    # two registries (as two processes would be) over one store, small ranges to force collisions
    apis = [
        Registry(store, admission=[ServiceAllocator("10.96.0.0/26", (30000, 30099), seed=s)]) for s in (7, 7)
    ]
    results: list[tuple[str, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        for i in range(10):
            try:
                s = apis[t % 2].create(svc(f"t{t}-{i}", type="NodePort"))
            except BaseException as e:
                with lock:
                    errors.append(e)
                return
            with lock:
                results.append((s["spec"]["clusterIP"], s["spec"]["ports"][0]["nodePort"]))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert errors == []
    assert len(results) == 40
    assert len({ip for ip, _ in results}) == 40
    assert len({port for _, port in results}) == 40
    assert sorted(allocated_node_ports(store)) == sorted(port for _, port in results)


def test_repair_releases_leaks_but_not_fresh_or_held(store: Store) -> None:
    clock = FakeClock()
    api = Registry(store, admission=default_admission_plugins(), clock=clock)
    api.create(svc("kept", type="NodePort"))
    api.create(svc("leaky", type="NodePort", node_port=30010, clusterIP="10.96.0.30"))
    Registry(store, clock=clock).delete("Service", "leaky")  # a registry without the plugin
    assert len(allocated_ips(store)) == 2
    assert repair_allocations(api, min_age=60) == []  # too fresh: could be a create in flight
    clock.advance(61)
    released = repair_allocations(api, min_age=60)
    assert sorted(released) == [IP_PREFIX + "10.96.0.30", "/registry/ranges/servicenodeports/30010"]
    kept = api.get("Service", "kept")["spec"]
    assert allocated_ips(store) == [kept["clusterIP"]]
    assert allocated_node_ports(store) == [kept["ports"][0]["nodePort"]]


def test_the_cluster_dns_address_is_never_allocated_only_claimed_by_name(store: Store) -> None:
    # a /28 has 14 usable addresses; one of them (10.96.0.10) is kept for kube-dns
    api = Registry(store, admission=[ServiceAllocator("10.96.0.0/28")])
    ips = [api.create(svc(f"s{i}"))["spec"]["clusterIP"] for i in range(13)]
    assert DNS_SERVICE_IP not in ips and len(set(ips)) == 13
    with pytest.raises(Forbidden, match="range is full"):
        api.create(svc("one-more"))
    dns = svc("kube-dns", clusterIP=DNS_SERVICE_IP)
    assert api.create(dns)["spec"]["clusterIP"] == DNS_SERVICE_IP
