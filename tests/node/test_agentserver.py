"""The node agent's logs/exec endpoint answers only callers presenting the cluster's credential."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbkube.errors import Unauthorized
from nbkube.node.agentclient import agent_error, agent_request, agent_target, agent_url
from nbkube.node.agentserver import AgentServer
from nbkube.registry.registry import Registry
from nbkube.security.agentauth import bearer, ensure_agent_token
from nbkube.store import open_store


class _Runtime:
    """Records what it was asked to run; answers logs with a fixed text."""

    def __init__(self) -> None:
        self.ran: list[list[str]] = []

    def exec(self, uid: str, container: str, argv: list[str]) -> tuple[int, str]:
        self.ran.append(argv)
        return 0, "uid=1000\n"

    def logs(self, uid: str, container: str, *, tail: int | None, follow: bool) -> str:
        return "hello\n"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(open_store("sqlite://:memory:"), credentials_dir=str(tmp_path))
    reg.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    reg.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
        }
    )
    yield reg
    reg.close()


@pytest.fixture
def served(api: Registry, tmp_path: Path) -> Iterator[tuple[AgentServer, _Runtime]]:
    runtime = _Runtime()
    server = AgentServer(api, "n1", runtime, token=ensure_agent_token(str(tmp_path)))
    server.start()
    yield server, runtime
    server.stop()


def _exec(endpoint: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    url = agent_url(endpoint, "exec", "default", "web", "c", {})
    body = json.dumps({"argv": ["id"]}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer " + "0" * 64},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
    ],
    ids=["none", "wrong-token", "other-scheme", "empty"],
)
def test_without_the_credential_nothing_runs(
    served: tuple[AgentServer, _Runtime], headers: dict[str, str]
) -> None:
    server, runtime = served
    code, body = _exec(server.endpoint, headers)
    assert code == 401
    assert "agent credential" in body["message"] and "\n" not in body["message"]
    assert runtime.ran == []
    url = agent_url(server.endpoint, "logs", "default", "web", "c", {})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10)
    assert err.value.code == 401


def test_with_the_credential_exec_and_logs_work(
    served: tuple[AgentServer, _Runtime], api: Registry, tmp_path: Path
) -> None:
    server, runtime = served
    code, body = _exec(server.endpoint, {"Authorization": bearer(ensure_agent_token(str(tmp_path)))})
    assert (code, body) == (200, {"exitCode": 0, "output": "uid=1000\n"})
    assert runtime.ran == [["id"]]
    # what the CLI and the API server do: the credential comes from the registry's cluster folder
    url = agent_url(server.endpoint, "logs", "default", "web", "c", {})
    with urllib.request.urlopen(agent_request(api, url), timeout=10) as resp:
        assert resp.read() == b"hello\n"


def test_a_caller_without_the_cluster_folder_gets_one_clear_line(
    served: tuple[AgentServer, _Runtime],
) -> None:
    server, runtime = served
    stranger = Registry(open_store("sqlite://:memory:"))  # no credentials_dir
    try:
        url = agent_url(server.endpoint, "exec", "default", "web", "c", {})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(agent_request(stranger, url, b'{"argv": ["id"]}'), timeout=10)
        error = agent_error(server.endpoint, err.value)
        assert isinstance(error, Unauthorized) and "agent credential" in str(error)
        assert runtime.ran == []
    finally:
        stranger.close()


def test_the_server_refuses_to_run_without_a_credential(api: Registry) -> None:
    with pytest.raises(ValueError, match="agent credential"):
        AgentServer(api, "n1", _Runtime(), token="")


def test_agent_target_reads_the_endpoint_annotation(
    served: tuple[AgentServer, _Runtime], api: Registry
) -> None:
    server, _runtime = served
    assert agent_target(api, "default", "web", None) == (server.endpoint, "c")
