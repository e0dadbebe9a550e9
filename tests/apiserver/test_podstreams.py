"""What pods/exec, attach and portforward check before the upgrade (nbkube/apiserver/podstreams.py)."""

from __future__ import annotations

import pytest
from nbk_apitest import pod

from nbkube.apiserver import podstreams
from nbkube.errors import BadRequest
from nbkube.node.agentserver import ENDPOINT_ANNOTATION
from nbkube.registry.registry import Registry


def test_the_clients_first_spoken_protocol_wins() -> None:
    assert podstreams.choose_protocol("v5.channel.k8s.io, v4.channel.k8s.io", "exec") == "v5.channel.k8s.io"
    assert podstreams.choose_protocol("v4.channel.k8s.io,v5.channel.k8s.io", "attach") == "v4.channel.k8s.io"
    assert (
        podstreams.choose_protocol("v5.channel.k8s.io,v4.channel.k8s.io", "portforward")
        == "v4.channel.k8s.io"
    )
    # kubectl >= 1.31: its SPDY session tunnelled in the WebSocket (nbkube/apiserver/spdystreams.py)
    assert (
        podstreams.choose_protocol("SPDY/3.1+portforward.k8s.io", "portforward") == "SPDY/3.1+portforward.k8s.io"
    )
    with pytest.raises(BadRequest, match=r"\(SPDY/3.1\+portforward.k8s.io\) is supported; this server speaks v5"):
        podstreams.choose_protocol("SPDY/3.1+portforward.k8s.io", "exec")
    with pytest.raises(BadRequest, match=r"\(none\)"):
        podstreams.choose_protocol("", "exec")


def test_end_status_is_upstreams() -> None:
    assert podstreams.end_status({"exitCode": 0}, ["true"]) == {"metadata": {}, "status": "Success"}
    assert podstreams.end_status({}, []) == {"metadata": {}, "status": "Success"}  # an attach
    failed = podstreams.end_status({"exitCode": 3}, ["sh", "-c", "exit 3"])
    assert failed["reason"] == "NonZeroExitCode" and failed["details"]["causes"] == [
        {"reason": "ExitCode", "message": "3"}
    ]
    assert "exit code 3" in failed["message"]
    assert podstreams.end_status({"message": "boom"}, [])["status"] == "Failure"


def _running(registry: Registry, phase: str = "Running", state: str = "running") -> None:
    registry.create(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "n1", "annotations": {ENDPOINT_ANNOTATION: "127.0.0.1:9"}},
        }
    )
    p = pod("web")
    p["spec"]["nodeName"] = "n1"
    p["status"] = {"phase": phase, "containerStatuses": [{"name": "c", "state": {state: {}}}]}
    registry.create(p)


def test_stream_target_builds_the_agent_url(registry: Registry) -> None:
    _running(registry)
    query = [
        ("command", "sh"),
        ("command", "-c"),
        ("command", "echo a b"),
        ("stdin", "true"),
        ("stdout", "true"),
    ]
    t = podstreams.stream_target(registry, "default", "web", "exec", query)
    assert t.urls == (
        "http://127.0.0.1:9/stream/exec/default/web/c?stdin=1&tty=0&command=sh&command=-c&command=echo+a+b",
    )
    assert t.command == ("sh", "-c", "echo a b") and t.stdin and t.stdout and t.stderr
    pf = podstreams.stream_target(
        registry, "default", "web", "portforward", [("ports", "80,8080"), ("ports", "9090")]
    )
    assert (
        pf.ports == (80, 8080, 9090)
        and len(pf.urls) == 3
        and pf.urls[1].endswith("/stream/portforward/default/web/-?port=8080")
    )


@pytest.mark.parametrize(
    ("sub", "query", "message"),
    [
        ("exec", [("stdout", "true")], "you must specify at least one command"),
        (
            "exec",
            [("command", "x"), ("stdout", "false"), ("stderr", "false")],
            "at least 1 of stdin, stdout, stderr",
        ),
        ("exec", [("command", "x"), ("container", "nope")], "container nope is not valid for pod web"),
        ("exec", [("command", "x"), ("stdin", "maybe")], "stdin must be true or false"),
        ("attach", [("stdin", "true")], "was not started with stdin: true"),
        ("portforward", [("ports", "http")], 'ports: "http" is not a port number'),
        ("portforward", [("ports", "70000")], "70000 is not between 1 and 65535"),
    ],
)
def test_refusals_before_the_upgrade(
    registry: Registry, sub: str, query: list[tuple[str, str]], message: str
) -> None:
    _running(registry)
    with pytest.raises(BadRequest, match=message):
        podstreams.stream_target(registry, "default", "web", sub, query)


def test_a_terminal_has_no_stderr(registry: Registry) -> None:
    _running(registry)
    target = podstreams.stream_target(registry, "default", "web", "exec", [("command", "x"), ("tty", "true")])
    assert target.tty and target.stdout and not target.stderr


def test_a_waiting_container_is_refused(registry: Registry) -> None:
    _running(registry, phase="Pending", state="waiting")
    with pytest.raises(BadRequest, match=r'container not found \("c"\)'):
        podstreams.stream_target(registry, "default", "web", "exec", [("command", "x")])


def test_a_completed_pod_is_refused(registry: Registry) -> None:
    _running(registry, phase="Succeeded", state="terminated")
    with pytest.raises(
        BadRequest, match="cannot exec into a container in a completed pod; current phase is Succeeded"
    ):
        podstreams.stream_target(registry, "default", "web", "exec", [("command", "x")])
