"""What the node agent hands a runtime for DNS and Service variables: the pod's resolv.conf by its
dnsPolicy and the variables of the Services that exist when it starts; a Docker node without
cluster DNS says so once."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "registry"))

from nbk_teststore import make_store  # noqa: E402

from nbkube.node.agent import NodeAgent  # noqa: E402
from nbkube.node.runtime.base import PodSandboxConfig  # noqa: E402
from nbkube.node.runtime.dnsconf import parse_resolv_conf  # noqa: E402
from nbkube.node.runtime.sim import SimRuntime  # noqa: E402
from nbkube.registry.registry import Registry  # noqa: E402


class RecordingRuntime(SimRuntime):
    """The simulated runtime, named as the Docker one, keeping each pod's sandbox config."""

    name = "docker"

    def __init__(self) -> None:
        super().__init__()
        self.sandboxes: dict[str, PodSandboxConfig] = {}

    def start_pod(self, pod: dict, sandbox: PodSandboxConfig) -> None:
        self.sandboxes[pod["metadata"]["name"]] = sandbox
        super().start_pod(pod, sandbox)


@pytest.fixture
def api() -> Iterator[Registry]:
    reg = Registry(make_store())
    yield reg
    reg.close()
    reg.store.close()


def _pod(name: str, **spec: Any) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}], **spec},
    }


def _started(rt: RecordingRuntime, name: str) -> PodSandboxConfig:
    done = threading.Event()
    for _ in range(250):  # bounded poll: the agent's workers start pods asynchronously
        if name in rt.sandboxes:
            return rt.sandboxes[name]
        done.wait(0.02)
    raise AssertionError(f"pod {name} was not started")


def test_sandbox_carries_resolv_conf_and_service_variables(api: Registry) -> None:
    api.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                "spec": {"clusterIP": "10.96.1.2", "selector": {"app": "web"}, "ports": [{"port": 8000}]}})  # fmt: skip
    rt = RecordingRuntime()
    host = parse_resolv_conf("nameserver 192.0.2.53\nsearch corp.example\n")
    agent = NodeAgent(api, "node-1", rt, heartbeat=10.0, cluster_dns=["10.96.0.10"], host_dns=host)
    agent.start()
    try:
        api.create(_pod("a"))
        api.create(_pod("b", dnsPolicy="Default", enableServiceLinks=False))
        a, b = _started(rt, "a"), _started(rt, "b")
        assert a.service_env["WEB_SERVICE_HOST"] == "10.96.1.2" and a.service_env["WEB_SERVICE_PORT"] == "8000"
        assert a.resolv_conf.startswith("nameserver 10.96.0.10\nsearch default.svc.cluster.local ")
        assert "WEB_SERVICE_HOST" not in b.service_env
        assert b.resolv_conf == "nameserver 192.0.2.53\nsearch corp.example\n"
    finally:
        agent.stop()
        rt.close()


def test_a_docker_node_without_cluster_dns_says_so_once(api: Registry) -> None:
    rt = RecordingRuntime()
    agent = NodeAgent(api, "node-1", rt, heartbeat=10.0, host_dns=parse_resolv_conf("nameserver 192.0.2.53\n"))
    agent.start()
    try:
        api.create(_pod("a"))
        api.create(_pod("b"))
        assert _started(rt, "a").resolv_conf == "nameserver 192.0.2.53\n"  # the node's, not a made-up one
        _started(rt, "b")  # both started: the warning comes before a pod's start_pod
        # one Warning Event for the node, as the kubelet's MissingClusterDNS (not one per pod)
        said = [e for e in api.list("Event", "default")[0] if e.get("reason") == "MissingClusterDNS"]
        assert len(said) == 1 and said[0]["type"] == "Warning", said
        assert "no cluster DNS server" in said[0]["message"] and "node-1" in said[0]["message"]
    finally:
        agent.stop()
        rt.close()
