"""The cluster DNS server over real sockets on loopback: A, SRV, headless, NXDOMAIN, forwarding.

Forwarding goes to a fake upstream on loopback (nothing leaves the machine)."""

from __future__ import annotations

import socket
import struct
import threading

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from nbkube.controlplane.dns.server import DNSServer, upstreams_from_resolv_conf
from nbkube.controlplane.dns.zone import Zone


def _svc(name, ip, ports, ns="default"):
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "ports": ports}}


def _slice(svc, endpoints, ports, ns="default"):
    return {
        "kind": "EndpointSlice",
        "metadata": {"name": f"{svc}-x", "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }


class FakeUpstream:
    """A loopback DNS server that answers every A question with 192.0.2.7 and counts them."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.asked: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            q = DNSRecord.parse(data)
            self.asked.append(str(q.q.qname))
            r = q.reply()
            r.add_answer(RR(q.q.qname, QTYPE.A, rdata=A("192.0.2.7"), ttl=60))
            self.sock.sendto(r.pack(), peer)

    def close(self):
        self.sock.close()


@pytest.fixture()
def dns():
    zone = Zone("cluster.local")
    zone.update_service(
        "default/web", _svc("web", "10.96.5.5", [{"name": "http", "port": 8000, "protocol": "TCP"}]), []
    )
    db_ports = [{"name": "pg", "port": 5432, "protocol": "TCP"}]
    zone.update_service(
        "default/db",
        _svc("db", "None", db_ports),
        [
            _slice(
                "db",
                [
                    {"addresses": ["10.244.1.5"], "hostname": "db-0", "conditions": {"ready": True}},
                    {"addresses": ["10.244.2.6"], "hostname": "db-1", "conditions": {"ready": True}},
                    {"addresses": ["10.244.2.9"], "hostname": "db-2", "conditions": {"ready": False}},
                ],
                db_ports,
            )
        ],
    )
    upstream = FakeUpstream()
    server = DNSServer(zone, "127.0.0.1", 0, upstreams=[upstream.sock.getsockname()])
    server.start()
    yield server, zone, upstream
    server.stop()
    upstream.close()


def _ask(server, name, qtype="A", tcp=False):
    q = DNSRecord.question(name, qtype)
    if tcp:
        with socket.create_connection(server.address, timeout=5) as s:
            data = q.pack()
            s.sendall(struct.pack("!H", len(data)) + data)
            n = struct.unpack("!H", s.recv(2))[0]
            buf = b""
            while len(buf) < n:
                buf += s.recv(n - len(buf))
            return DNSRecord.parse(buf)
    return DNSRecord.parse(q.send(*server.address, timeout=5))


def _a(reply):
    return sorted(str(r.rdata) for r in reply.rr if r.rtype == QTYPE.A)


def test_service_name_is_its_cluster_ip_over_udp_and_tcp(dns):
    server, _, _ = dns
    assert _a(_ask(server, "web.default.svc.cluster.local")) == ["10.96.5.5"]
    assert _a(_ask(server, "WEB.default.svc.cluster.local.", tcp=True)) == ["10.96.5.5"]
    empty = _ask(server, "web.default.svc.cluster.local", "AAAA")
    assert empty.header.rcode == RCODE.NOERROR and not empty.rr


def test_srv_for_named_ports(dns):
    server, _, _ = dns
    reply = _ask(server, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert [(r.rdata.port, str(r.rdata.target)) for r in reply.rr] == [(8000, "web.default.svc.cluster.local.")]
    headless = _ask(server, "_pg._tcp.db.default.svc.cluster.local", "SRV")
    targets = sorted(str(r.rdata.target) for r in headless.rr)
    assert targets == ["db-0.db.default.svc.cluster.local.", "db-1.db.default.svc.cluster.local."]
    assert sorted(str(r.rdata) for r in headless.ar) == ["10.244.1.5", "10.244.2.6"]


def test_headless_service_and_pod_hostnames(dns):
    server, _, _ = dns
    assert _a(_ask(server, "db.default.svc.cluster.local")) == ["10.244.1.5", "10.244.2.6"]  # ready ones
    assert _a(_ask(server, "db-1.db.default.svc.cluster.local")) == ["10.244.2.6"]
    assert _ask(server, "db-2.db.default.svc.cluster.local").header.rcode == RCODE.NXDOMAIN


def test_unknown_cluster_names_are_nxdomain_and_parents_exist(dns):
    server, zone, upstream = dns
    for name in ("nope.default.svc.cluster.local", "web.other.svc.cluster.local", "x.cluster.local"):
        reply = _ask(server, name)
        assert reply.header.rcode == RCODE.NXDOMAIN, name
        assert reply.auth and reply.auth[0].rtype == QTYPE.SOA
    assert _ask(server, "default.svc.cluster.local").header.rcode == RCODE.NOERROR
    zone.update_service("default/web", None, [])
    assert _ask(server, "web.default.svc.cluster.local").header.rcode == RCODE.NXDOMAIN
    assert upstream.asked == []  # cluster names never go upstream


def test_other_names_are_forwarded_to_the_upstream(dns):
    server, _, upstream = dns
    reply = _ask(server, "example.org")
    assert _a(reply) == ["192.0.2.7"]
    assert upstream.asked == ["example.org."]
    assert _a(_ask(server, "example.org", tcp=True)) == ["192.0.2.7"]


def test_a_dead_upstream_gives_servfail():
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    addr = closed.getsockname()
    closed.close()  # nothing listens there now: the forward gets a refusal
    server = DNSServer(Zone(), "127.0.0.1", 0, upstreams=[addr], forward_timeout=0.5)
    server.start()
    try:
        assert _ask(server, "example.org").header.rcode == RCODE.SERVFAIL
    finally:
        server.stop()


def test_upstreams_come_from_resolv_conf(tmp_path):
    p = tmp_path / "resolv.conf"
    p.write_text("# comment\nnameserver 127.0.0.53\nsearch example\nnameserver 10.0.0.2 # x\n")
    assert upstreams_from_resolv_conf(str(p)) == [("127.0.0.53", 53), ("10.0.0.2", 53)]
    assert upstreams_from_resolv_conf(str(tmp_path / "missing")) == []


def test_cached_answers_follow_zone_changes(dns):
    server, zone, _ = dns
    assert _a(_ask(server, "web.default.svc.cluster.local")) == ["10.96.5.5"]
    first = server._cache_version
    assert _a(_ask(server, "web.default.svc.cluster.local")) == ["10.96.5.5"]  # from the cache
    zone.update_service("default/web", _svc("web", "10.96.7.7", [{"port": 80}]), [])
    assert _a(_ask(server, "web.default.svc.cluster.local")) == ["10.96.7.7"]
    assert server._cache_version != first
    for qid in (4242, 777):  # the second is a cache hit: it still carries its own query's id
        q = DNSRecord.question("web.default.svc.cluster.local", "A")
        q.header.id = qid
        assert DNSRecord.parse(q.send(*server.address, timeout=5)).header.id == qid


def test_external_name_is_a_cname_and_unnamed_ports_have_no_srv(dns):
    server, zone, upstream = dns
    zone.update_service(
        "default/ext",
        {"metadata": {"name": "ext", "namespace": "default"},
         "spec": {"type": "ExternalName", "externalName": "db.example.org"}},
        [],
    )  # fmt: skip
    reply = _ask(server, "ext.default.svc.cluster.local")
    assert [(r.rtype, str(r.rdata)) for r in reply.rr] == [(QTYPE.CNAME, "db.example.org.")]
    assert upstream.asked == []  # the client follows the CNAME itself
    zone.update_service("default/plain", _svc("plain", "10.96.9.9", [{"port": 80}]), [])
    assert _ask(server, "_http._tcp.plain.default.svc.cluster.local", "SRV").header.rcode == RCODE.NXDOMAIN


def test_idle_tcp_clients_do_not_hold_up_forwarding(dns):
    server, _, upstream = dns
    idle = [socket.create_connection(server.address, timeout=5) for _ in range(8)]  # more than the pool
    try:
        assert _a(_ask(server, "example.org")) == ["192.0.2.7"]
        assert _a(_ask(server, "web.default.svc.cluster.local", tcp=True)) == ["10.96.5.5"]
    finally:
        for s in idle:
            s.close()


def test_pod_names_by_address(dns):
    server, _, _ = dns
    assert _a(_ask(server, "10-244-1-5.default.pod.cluster.local")) == ["10.244.1.5"]
    for bad in ("10-244-1.default.pod.cluster.local", "10-244-1-5.pod.cluster.local", "x.default.pod.cluster.local"):
        assert _ask(server, bad).header.rcode == RCODE.NXDOMAIN, bad
