"""The userspace proxy forwards real TCP connections on loopback, round robin, and cleans up."""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from nbkube.node.proxy.rules import Backend, ServicePortRule
from nbkube.node.proxy.userspace import RETRY_MAX, UserspaceProxy


class _NameServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def _backend(ip: str, reply: bytes) -> _NameServer:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(1024)
            self.request.sendall(reply)

    server = _NameServer((ip, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def backends() -> Iterator[list[_NameServer]]:
    servers = [_backend(f"127.0.42.{i}", f"pod-{i}".encode()) for i in (1, 2, 3)]
    yield servers
    for s in servers:
        s.shutdown()
        s.server_close()


def _rule(
    servers: list[_NameServer], affinity: bool = False, node_port: int | None = None
) -> ServicePortRule:
    return ServicePortRule(
        service="default/web",
        port_name="",
        protocol="TCP",
        cluster_ip="10.96.0.10",
        port=_free_port(),
        node_port=node_port,
        session_affinity=affinity,
        affinity_timeout=60,
        backends=tuple(Backend(*s.server_address[:2]) for s in servers),
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ask(ip: str, port: int) -> bytes:
    with socket.create_connection((ip, port), timeout=5) as conn:
        conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return conn.recv(1024)


def _to_loopback(ip: str) -> str:
    return "127.96." + ".".join(ip.split(".")[2:])


def test_round_robin_over_ready_backends_on_cluster_ip_and_node_port(backends):
    rule = _rule(backends, node_port=_free_port())
    with UserspaceProxy(address_map=_to_loopback) as proxy:
        assert proxy.sync([rule], node_ips=["127.0.43.1"]) == {}
        assert set(proxy.listening()) == {("127.96.0.10", rule.port), ("127.0.43.1", rule.node_port)}
        seen = Counter(_ask("127.96.0.10", rule.port) for _ in range(30))
        assert seen == {b"pod-1": 10, b"pod-2": 10, b"pod-3": 10}
        assert _ask("127.0.43.1", rule.node_port or 0).startswith(b"pod-")
        assert proxy.stats()["default/web"]["connections"] == 31


def test_client_ip_affinity_sticks_to_one_backend(backends):
    rule = _rule(backends, affinity=True)
    with UserspaceProxy(address_map=_to_loopback) as proxy:
        proxy.sync([rule], node_ips=[])
        assert len({_ask("127.96.0.10", rule.port) for _ in range(10)}) == 1


def test_a_dead_backend_is_skipped_and_endpoint_changes_apply_without_reopening(backends):
    rule = _rule(backends)
    backends[0].shutdown()
    backends[0].server_close()
    with UserspaceProxy(address_map=_to_loopback) as proxy:
        proxy.sync([rule], node_ips=[])
        replies = {_ask("127.96.0.10", rule.port) for _ in range(6)}
        assert replies == {b"pod-2", b"pod-3"}
        assert proxy.stats()["default/web"]["failures"] >= 1
        narrowed = ServicePortRule(**{**rule.__dict__, "backends": rule.backends[2:]})
        proxy.sync([narrowed], node_ips=[])
        assert {_ask("127.96.0.10", rule.port) for _ in range(4)} == {b"pod-3"}


def test_stop_closes_every_listener(backends):
    rule = _rule(backends)
    proxy = UserspaceProxy(address_map=_to_loopback)
    proxy.sync([rule], node_ips=[])
    proxy.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.96.0.10", rule.port), timeout=1)


def test_a_port_in_use_is_reported_not_raised(backends):
    rule = _rule(backends)
    with socket.socket() as squatter:
        squatter.bind(("127.96.0.10", rule.port))
        squatter.listen()
        with UserspaceProxy(address_map=_to_loopback) as proxy:
            errors = proxy.sync([rule], node_ips=[])
            assert list(errors) == [("127.96.0.10", rule.port)]
            assert "default/web" in errors[("127.96.0.10", rule.port)]


def test_a_taken_port_is_logged_once_and_retried_quietly_until_it_is_free(backends, caplog):
    rule = _rule(backends)
    addr = ("127.96.0.10", rule.port)
    squatter = socket.socket()
    squatter.bind(addr)
    squatter.listen()
    with UserspaceProxy(address_map=_to_loopback) as proxy:
        with caplog.at_level(logging.INFO, logger="nbkube.node.proxy.userspace"):
            for _ in range(5):  # a sync per endpoint change
                assert list(proxy.sync([rule], node_ips=[])) == [addr]
            assert list(proxy.failing()) == [addr] and "in use" in proxy.failing()[addr]
            squatter.close()
            # no sync needed: the proxy's own retry opens it once the port is free
            deadline = time.monotonic() + 3 * RETRY_MAX
            while addr not in proxy.listening() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert addr in proxy.listening() and proxy.failing() == {}
            assert _ask(*addr).startswith(b"pod-")
        lines = [r.getMessage() for r in caplog.records]
        assert len([m for m in lines if "cannot listen" in m]) == 1, lines
        assert len([m for m in lines if "now listening" in m]) == 1, lines
        assert proxy.sync([rule], node_ips=[]) == {}


class _FakeTransport:
    """Just enough of an asyncio transport to watch what a splice side does with it."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.eof = False
        self.reading = True

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return False


def test_bytes_read_before_the_backend_is_attached_are_sent_first_not_dropped() -> None:
    """Some Pythons (Debian 12's 3.11.2) read from a transport paused in connection_made: a
    request that arrives before the backend connects must still reach the backend."""
    from nbkube.node.proxy.userspace import _BackendSide, _ClientSide, _Listener

    client = _ClientSide(UserspaceProxy(), _Listener(_rule([])))
    client.transport = _FakeTransport()  # type: ignore[assignment]
    client.data_received(b"GET / HTTP/1.0\r\n")
    client.data_received(b"\r\n")
    assert client.eof_received() is True  # the half-close waits for the backend too
    assert client.transport.reading is False  # type: ignore[attr-defined]
    upstream = _BackendSide(client)
    upstream.transport = _FakeTransport()  # type: ignore[assignment]
    client.attach(upstream)
    assert upstream.transport.written == [b"GET / HTTP/1.0\r\n", b"\r\n"]  # type: ignore[attr-defined]
    assert upstream.transport.eof is True  # type: ignore[attr-defined]
    client.data_received(b"more")  # attached: straight through
    assert upstream.transport.written[-1] == b"more"  # type: ignore[attr-defined]
