"""Which exec/attach clients the WebSocket relay holds the first message for (wsstreams.py)."""

from __future__ import annotations

import pytest

from nbkube.apiserver.podstreams import V5
from nbkube.apiserver.wsstreams import holds_first_message

KUBECTL_133 = "kubectl/v1.33.1 (linux/amd64) kubernetes/8adc0f0"


@pytest.mark.parametrize(
    "agent",
    [
        KUBECTL_133,
        "kubectl.exe/v1.31.0 (windows/amd64) kubernetes/9edcffc",  # kubectl on Windows
        "my-operator/v0.0.0 (linux/arm64) kubernetes/$Format",  # client-go's default in a program of its own
        "Go-http-client/1.1",  # a Go program that set no User-Agent
    ],
)
def test_go_clients_speaking_v5_are_held(agent: str) -> None:
    assert holds_first_message(V5, agent)


@pytest.mark.parametrize(
    "agent",
    [
        None,  # the official Python client's WebSocket sends none
        "",
        "Python/3.11 aiohttp/3.9.5",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",  # a browser's terminal
        "kubernetes-client/java",
        "kubectl/v1.33.1 (linux/amd64)",  # not client-go's whole format
    ],
)
def test_other_clients_are_not_held(agent: str | None) -> None:
    assert not holds_first_message(V5, agent)


def test_only_v5_is_held() -> None:
    # kubectl before 1.30 speaks v4 over SPDY, and a v4 WebSocket client's streams are its own
    assert not holds_first_message("v4.channel.k8s.io", KUBECTL_133)
