"""Probe checks against real loopback servers, and the threshold/timing state with explicit times."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from nbkube.errors import BadRequest
from nbkube.node.probes import ProbeResult, ProbeTracker, probe_port, run_probe, validate_probe


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        code = {"/ok": 200, "/redirect": 302, "/bad": 500}.get(self.path, 404)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_http_get_success_is_200_to_399_and_names_the_failure(server: int) -> None:
    def probe(path: str) -> dict:
        return {"httpGet": {"path": path, "port": server}, "timeoutSeconds": 2}

    assert run_probe(probe("/ok"), host="127.0.0.1").ok
    assert run_probe(probe("/redirect"), host="127.0.0.1").ok
    bad = run_probe(probe("/bad"), host="127.0.0.1")
    assert not bad.ok and "500" in bad.message
    down = run_probe({"httpGet": {"port": _closed_port()}}, host="127.0.0.1")
    assert not down.ok and "127.0.0.1" in down.message


def test_named_port_and_tcp_socket(server: int) -> None:
    ports = [{"name": "http", "containerPort": server}]
    assert run_probe({"tcpSocket": {"port": "http"}}, host="127.0.0.1", ports=ports).ok
    assert not run_probe({"tcpSocket": {"port": _closed_port()}}, host="127.0.0.1").ok
    unknown = run_probe({"tcpSocket": {"port": "nope"}}, host="127.0.0.1", ports=ports)
    assert not unknown.ok and "nope" in unknown.message
    assert probe_port("8080", []) == 8080


def test_exec_goes_through_the_runtime_callable() -> None:
    calls: list[tuple[list[str], float]] = []

    def exec_fn(argv: list[str], timeout: float) -> tuple[int, str]:
        calls.append((argv, timeout))
        return (0, "") if argv[-1] == "good" else (1, "first\nno such file\n")

    assert run_probe(
        {"exec": {"command": ["check", "good"]}, "timeoutSeconds": 3}, host="x", exec_fn=exec_fn
    ).ok
    res = run_probe({"exec": {"command": ["check", "bad"]}}, host="x", exec_fn=exec_fn)
    assert not res.ok and "exited with 1" in res.message and "no such file" in res.message
    assert calls[0] == (["check", "good"], 3.0)
    assert not run_probe({"exec": {"command": ["x"]}}, host="x").ok  # no runtime support


def test_readiness_thresholds_and_schedule() -> None:
    probe = {"initialDelaySeconds": 5, "periodSeconds": 10, "successThreshold": 2, "failureThreshold": 2}
    t = ProbeTracker(probe, "readiness", started_at=100.0)
    assert not t.passing and not t.due(104.9) and t.due(105.0)
    assert t.record(ProbeResult(True), 105.0) is False  # one success of two
    assert t.next_at == 115.0
    assert t.record(ProbeResult(True), 115.0) is True
    assert t.record(ProbeResult(False, "x"), 125.0) is True  # one failure of two
    assert t.record(ProbeResult(False, "down"), 135.0) is False and t.last_message == "down"
    assert t.record(ProbeResult(True), 145.0) is False  # needs two successes again


def test_fast_period_until_first_success_then_the_real_one() -> None:
    t = ProbeTracker({"periodSeconds": 10}, "readiness", 0.0, first_success_period=0.1)
    t.record(ProbeResult(False), 0.0)
    assert t.next_at == pytest.approx(0.1)
    t.record(ProbeResult(True), 0.1)
    t.record(ProbeResult(False), 0.2)
    assert t.next_at == pytest.approx(10.2)


def test_liveness_starts_alive_and_fails_after_threshold() -> None:
    t = ProbeTracker({"failureThreshold": 3}, "liveness", 0.0)
    assert t.passing
    assert t.record(ProbeResult(False), 0.0) and t.record(ProbeResult(False), 10.0)
    assert t.record(ProbeResult(False), 20.0) is False


@pytest.mark.parametrize(
    ("probe", "field"),
    [
        ({}, "exactly one of"),
        ({"httpGet": {"port": 80}, "tcpSocket": {"port": 80}}, "exactly one of"),
        ({"httpGet": {}}, "httpGet.port"),
        ({"exec": {"command": []}}, "exec.command"),
        ({"tcpSocket": {"port": 1}, "periodSeconds": 0}, "periodSeconds"),
        ({"tcpSocket": {"port": 1}, "failureThreshold": "3"}, "failureThreshold"),
    ],
)
def test_validate_probe_names_the_field(probe: dict, field: str) -> None:
    with pytest.raises(BadRequest, match=field) as err:
        validate_probe(probe, "spec.containers[0].readinessProbe")
    assert "spec.containers[0].readinessProbe" in str(err.value)
