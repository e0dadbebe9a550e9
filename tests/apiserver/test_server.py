"""The HTTP layer itself: watches hold no thread and end with their client, followed logs survive
silence, bodies are bounded, HEAD has no body."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from nbk_apitest import call, connect, pod, tls

from nbkube.apiserver import ApiServer, serve
from nbkube.apiserver.server import MAX_BODY_BYTES
from nbkube.node.agentserver import ENDPOINT_ANNOTATION
from nbkube.registry.registry import Registry


def _wait(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _open_watch(server: ApiServer) -> socket.socket:
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock = tls(server).wrap_socket(raw, server_hostname="127.0.0.1")
    sock.sendall(
        b"GET /api/v1/namespaces/default/pods?watch=true&resourceVersion=1 HTTP/1.1\r\n"
        b"Host: x\r\nAccept: application/json\r\n\r\n"
    )
    return sock


def _read_until(sock: socket.socket, needle: bytes, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while needle not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before {needle!r}: {data!r}"
        data += chunk
    return data


def test_open_watches_hold_no_thread_and_end_with_their_client(server: ApiServer, registry: Registry) -> None:
    registry.create(pod("seed"))
    before = threading.active_count()
    base = len(registry._watches)  # the RBAC cache's own
    socks = [_open_watch(server) for _ in range(40)]
    try:
        _wait(lambda: len(registry._watches) == base + 40)
        # a thread per watch would add 40; the loop and a few pool workers add a handful at most
        assert threading.active_count() - before < 20
        registry.create(pod("late"))
        for s in socks:
            assert b'"name":"late"' in _read_until(s, b'"name":"late"').replace(b" ", b"")
    finally:
        for s in socks:
            s.close()
    _wait(lambda: len(registry._watches) == base)  # every registry watch cancelled with its client


def test_followed_log_survives_silence(server: ApiServer, registry: Registry) -> None:
    release = threading.Event()

    class Agent(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"before\n")
            self.wfile.flush()
            release.wait(10)  # silence, far longer than any read timeout of the old relay
            self.wfile.write(b"after\n")

    agent = ThreadingHTTPServer(("127.0.0.1", 0), Agent)
    threading.Thread(target=agent.serve_forever, daemon=True).start()
    try:
        registry.create(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": "n1",
                    "annotations": {ENDPOINT_ANNOTATION: f"127.0.0.1:{agent.server_address[1]}"},
                },
            }
        )
        p = pod("web")
        p["spec"]["nodeName"] = "n1"
        registry.create(p)
        conn = connect(server, timeout=15)
        conn.request("GET", "/api/v1/namespaces/default/pods/web/log?follow=true")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read1(100) == b"before\n"
        threading.Timer(3.0, release.set).start()
        assert resp.read() == b"after\n"  # then the stream ends cleanly (terminating chunk)
        conn.close()
    finally:
        release.set()
        agent.shutdown()
        agent.server_close()


def test_body_limit_and_chunked_bodies(server: ApiServer) -> None:
    code, body, _ = call(server, "POST", "/api/v1/namespaces/default/pods", raw=b"x" * (MAX_BODY_BYTES + 1))
    assert code == 413 and body["reason"] == "RequestEntityTooLarge"
    conn = connect(server)
    data = json.dumps(pod("chunky")).encode()
    conn.request(
        "POST",
        "/api/v1/namespaces/default/pods",
        body=iter([data[:10], data[10:]]),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        encode_chunked=True,
    )
    resp = conn.getresponse()
    assert resp.status == 201 and json.loads(resp.read())["metadata"]["name"] == "chunky"
    conn.close()


def test_head_has_headers_only(server: ApiServer) -> None:
    conn = connect(server)
    conn.request("HEAD", "/api/v1/namespaces/default/pods")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type") == "application/json"
    assert resp.read() == b""
    conn.close()


def test_stop_closes_the_port_and_watches(registry: Registry, tmp_path: Any) -> None:
    base = len(registry._watches)
    srv = serve(registry, folder=str(tmp_path / "pki"))
    sock = _open_watch(srv)
    _wait(lambda: len(registry._watches) == base + 5)  # the RBAC cache's four and this one
    port = srv.port
    srv.stop()
    _wait(lambda: len(registry._watches) == base)
    sock.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
