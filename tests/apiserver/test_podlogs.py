"""`pods/log` relays the node agent's `/logs/...` answer (a stand-in agent here) to kubectl."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from nbk_apitest import KUBECTL, Kubectl, call, pod

from nbkube.apiserver import ApiServer
from nbkube.node.agentserver import ENDPOINT_ANNOTATION
from nbkube.registry.registry import Registry


class _Agent(BaseHTTPRequestHandler):
    paths: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        _Agent.paths.append(self.path)
        if not self.path.startswith("/logs/default/web/c"):
            body = b'{"message": "no such container"}'
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        self.wfile.write(b"hello from c\nsecond line\n")


@pytest.fixture
def agent() -> Iterator[str]:
    srv = HTTPServer(("127.0.0.1", 0), _Agent)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    yield f"127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _scheduled_pod(registry: Registry, endpoint: str | None) -> None:
    annotations = {ENDPOINT_ANNOTATION: endpoint} if endpoint else {}
    registry.create(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "annotations": annotations}}
    )
    p = pod("web")
    p["spec"]["nodeName"] = "n1"
    registry.create(p)


def test_logs_are_relayed(server: ApiServer, registry: Registry, agent: str) -> None:
    _scheduled_pod(registry, agent)
    code, text, _ = call(server, "GET", "/api/v1/namespaces/default/pods/web/log?tailLines=5&follow=true")
    assert code == 200 and text == "hello from c\nsecond line\n"
    assert _Agent.paths[-1] == "/logs/default/web/c?tail=5&follow=1"
    code, body, _ = call(server, "GET", "/api/v1/namespaces/default/pods/web/log?container=other")
    assert code == 400 and "container other is not valid" in body["message"]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_logs(kubectl: Kubectl, registry: Registry, agent: str) -> None:
    _scheduled_pod(registry, agent)
    assert kubectl.ok("logs", "web") == "hello from c\nsecond line\n"


def test_simulated_node_has_no_logs(server: ApiServer, registry: Registry) -> None:
    _scheduled_pod(registry, None)
    code, body, _ = call(server, "GET", "/api/v1/namespaces/default/pods/web/log")
    assert code == 400 and "node n1 does not serve logs" in body["message"]
    assert call(server, "GET", "/api/v1/namespaces/default/services/web/log")[0] == 404


def test_log_options_reach_the_agent(server: ApiServer, registry: Registry, agent: str) -> None:
    _scheduled_pod(registry, agent)
    path = (
        "/api/v1/namespaces/default/pods/web/log?limitBytes=10&timestamps=true&previous=true&sinceSeconds=60"
    )
    assert call(server, "GET", path)[0] == 200
    sent = _Agent.paths[-1]
    assert sent.startswith("/logs/default/web/c?limitBytes=10&since=")
    assert sent.endswith("&timestamps=1&previous=1")
    since = float(sent.split("since=")[1].split("&")[0])
    assert (
        call(server, "GET", "/api/v1/namespaces/default/pods/web/log?sinceTime=2026-01-02T03:04:05Z")[0]
        == 200
    )
    assert _Agent.paths[-1] == "/logs/default/web/c?since=1767323045.0"
    assert since > 1767323045.0
    for bad, message in (
        ("limitBytes=0", "limitBytes must be at least 1"),
        ("sinceSeconds=x", 'sinceSeconds must be an integer, got "x"'),
        ("sinceTime=yesterday", "sinceTime must be an RFC 3339 time"),
        ("sinceSeconds=5&sinceTime=2026-01-02T03:04:05Z", "at most one of sinceTime or sinceSeconds"),
    ):
        code, body, _ = call(server, "GET", f"/api/v1/namespaces/default/pods/web/log?{bad}")
        assert code == 400 and message in body["message"], bad
