"""Which listeners the embedded mode's userspace proxy opens for pods' hostPorts (pure)."""

from __future__ import annotations

from typing import Any

from nbkube.node.proxy.hostport_rules import host_port_listeners
from nbkube.node.proxy.rules import Backend


def pod(name: str, ports: list[dict[str, Any]], *, phase: str = "Running", ip: str = "127.244.1.5",
        host_ip: str = "127.240.0.2", deleting: bool = False) -> dict[str, Any]:  # fmt: skip
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "c", "ports": ports}]},
        "status": {"phase": phase, "podIP": ip, "hostIP": host_ip},
    }


def test_a_host_port_listens_on_the_pods_node_and_forwards_to_its_container_port() -> None:
    listeners, refused = host_port_listeners([pod("web", [{"containerPort": 8080, "hostPort": 18080}])])
    assert refused == {}
    rule = listeners[("127.240.0.2", 18080)]
    assert rule.service == "default/web" and rule.backends == (Backend("127.244.1.5", 8080, "default/web"),)
    assert rule.node_port is None


def test_pods_without_address_finished_or_terminating_get_none() -> None:
    ports = [{"containerPort": 8080, "hostPort": 18080}]
    assert host_port_listeners([pod("a", ports, ip="")]) == ({}, {})
    assert host_port_listeners([pod("b", ports, phase="Succeeded")]) == ({}, {})
    assert host_port_listeners([pod("c", ports, deleting=True)]) == ({}, {})
    assert host_port_listeners([pod("d", [{"containerPort": 8080}])]) == ({}, {})


def test_what_cannot_be_served_is_reported_not_dropped() -> None:
    listeners, refused = host_port_listeners([
        pod("udp", [{"containerPort": 53, "hostPort": 5353, "protocol": "UDP"}]),
        pod("elsewhere", [{"containerPort": 80, "hostPort": 18081, "hostIP": "127.9.9.9"}]),
        pod("a-first", [{"containerPort": 80, "hostPort": 18082}]),
        pod("b-second", [{"containerPort": 80, "hostPort": 18082}], ip="127.244.1.6"),
    ])  # fmt: skip
    assert set(listeners) == {("127.240.0.2", 18082)}
    assert listeners[("127.240.0.2", 18082)].service == "default/a-first"
    assert "TCP only" in refused[("127.240.0.2", 5353)]
    assert "not its node's address" in refused[("127.240.0.2", 18081)]
    assert "taken by default/a-first" in refused[("127.240.0.2", 18082)]
