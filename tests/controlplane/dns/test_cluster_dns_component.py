"""The cluster DNS component over a registry: informers feed the zone, kube-dns is published at the
server, and a restart keeps the port of the last run when it is free."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from dnslib import QTYPE, DNSRecord

from nbkube.controlplane.dns.component import ClusterDNS
from nbkube.registry.admission_chain import default_admission_plugins
from nbkube.registry.registry import Registry
from nbkube.store import open_store


@pytest.fixture
def api() -> Iterator[Registry]:
    reg = Registry(open_store("sqlite://:memory:"), admission=default_admission_plugins())
    yield reg
    reg.close()


def _a(dns: ClusterDNS, name: str) -> list[str]:
    reply = DNSRecord.parse(DNSRecord.question(name, "A").send(*dns.address, timeout=5))
    return sorted(str(r.rdata) for r in reply.rr if r.rtype == QTYPE.A)


def _wait(predicate, timeout: float = 5.0) -> bool:
    done = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return True
        done.wait(0.02)
    return False


def test_publishes_kube_dns_and_follows_services(api: Registry) -> None:
    dns = ClusterDNS(api, "127.0.0.1", upstreams=[])
    dns.start()
    try:
        svc = api.get("Service", "kube-dns", "kube-system")
        assert svc["spec"]["clusterIP"] == "10.96.0.10" and "selector" not in svc["spec"]
        ep = api.get("Endpoints", "kube-dns", "kube-system")
        assert ep["subsets"][0]["addresses"] == [{"ip": "127.0.0.1"}]
        assert {(p["protocol"], p["port"]) for p in ep["subsets"][0]["ports"]} == {
            ("UDP", dns.address[1]), ("TCP", dns.address[1])
        }  # fmt: skip
        created = api.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                              "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})  # fmt: skip
        ip = created["spec"]["clusterIP"]
        assert ip != "10.96.0.10"
        assert _wait(lambda: _a(dns, "web.default.svc.cluster.local") == [ip])
        assert _a(dns, "kube-dns.kube-system.svc.cluster.local") == ["10.96.0.10"]
        api.delete("Service", "web", "default")
        assert _wait(lambda: _a(dns, "web.default.svc.cluster.local") == [])
    finally:
        dns.stop()


def test_a_restart_keeps_the_port_when_free(api: Registry) -> None:
    first = ClusterDNS(api, "127.0.0.1", upstreams=[])
    first.start()
    port = first.address[1]
    first.stop()
    second = ClusterDNS(api, "127.0.0.1", upstreams=[])
    try:
        assert second.address[1] == port
    finally:
        second.server.stop()
    # the port taken meanwhile: another one, and the Endpoints follow
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", port))
    try:
        third = ClusterDNS(api, "127.0.0.1", upstreams=[])
        third.start()
        try:
            assert third.address[1] != port
            ep = api.get("Endpoints", "kube-dns", "kube-system")
            assert ep["subsets"][0]["ports"][0]["port"] == third.address[1]
        finally:
            third.stop()
    finally:
        squatter.close()
