"""Endpoints controller: ready/not-ready split, named target ports, grouping, write-on-change, delete."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from nbk_workload_helpers import FakeKubelet, rc_manifest, started, wait_for

from nbkube.api.meta import Obj
from nbkube.client.informer import InformerFactory
from nbkube.controlplane.controllers.endpoints import EndpointsController, compute_subsets
from nbkube.controlplane.controllers.replication import ReplicationManager
from nbkube.errors import NotFound
from nbkube.registry.registry import Registry


def service(ports: list[dict[str, object]] | None = None) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
        "spec": {"selector": {"app": "nginx"}, "ports": ports or [{"port": 8000, "targetPort": 80}]},
    }


def pod(
    name: str, ip: str, ready: bool, ports: list[dict[str, object]] | None = None, phase: str = "Running"
) -> Obj:
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": {"app": "nginx"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x", "ports": ports or []}]},
        "status": {
            "phase": phase,
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_subsets_split_ready_and_group_by_named_port() -> None:
    svc = service([{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}])
    pods = [
        pod("a", "10.0.0.2", True, [{"name": "web", "containerPort": 8080, "protocol": "TCP"}]),
        pod("b", "10.0.0.10", False, [{"name": "web", "containerPort": 8080, "protocol": "TCP"}]),
        pod("c", "10.0.0.3", True, [{"name": "web", "containerPort": 9090, "protocol": "TCP"}]),
        pod("d", "10.0.0.4", True, [{"name": "other", "containerPort": 1, "protocol": "TCP"}]),
        pod("e", "10.0.0.5", True, phase="Succeeded"),
        pod("f", "", False),
    ]
    subsets = compute_subsets(svc, pods)
    assert subsets == [
        {
            "addresses": [
                {
                    "ip": "10.0.0.4",
                    "nodeName": "n1",
                    "targetRef": {"kind": "Pod", "name": "d", "namespace": "default", "uid": "uid-d"},
                }
            ]
        },
        {
            "addresses": [
                {
                    "ip": "10.0.0.2",
                    "nodeName": "n1",
                    "targetRef": {"kind": "Pod", "name": "a", "namespace": "default", "uid": "uid-a"},
                }
            ],
            "notReadyAddresses": [
                {
                    "ip": "10.0.0.10",
                    "nodeName": "n1",
                    "targetRef": {"kind": "Pod", "name": "b", "namespace": "default", "uid": "uid-b"},
                }
            ],
            "ports": [{"port": 8080, "protocol": "TCP", "name": "http"}],
        },
        {
            "addresses": [
                {
                    "ip": "10.0.0.3",
                    "nodeName": "n1",
                    "targetRef": {"kind": "Pod", "name": "c", "namespace": "default", "uid": "uid-c"},
                }
            ],
            "ports": [{"port": 9090, "protocol": "TCP", "name": "http"}],
        },
    ]
    assert compute_subsets(svc, list(reversed(pods))) == subsets, "deterministic"


@pytest.fixture
def controllers(api: Registry, factory: InformerFactory) -> Iterator[EndpointsController]:
    ep = EndpointsController(api, factory)
    rc = ReplicationManager(api, factory)
    with started(factory, ep, rc):
        yield ep


def addresses(api: Registry) -> tuple[int, int]:
    try:
        ep = api.get("Endpoints", "nginx", "default")
    except NotFound:
        return -1, -1
    ready = sum(len(s.get("addresses") or []) for s in ep.get("subsets") or [])
    not_ready = sum(len(s.get("notReadyAddresses") or []) for s in ep.get("subsets") or [])
    return ready, not_ready


def test_endpoints_follow_pods_and_service(
    api: Registry, controllers: EndpointsController, kubelet: FakeKubelet
) -> None:
    kubelet.hold = lambda p: p["metadata"]["labels"].get("hold") == "yes"
    api.create(rc_manifest(replicas=5))
    api.create(service())
    wait_for(lambda: addresses(api) == (5, 0), what="5 ready addresses")
    ep = api.get("Endpoints", "nginx", "default")
    assert ep["subsets"][0]["ports"] == [{"port": 80, "protocol": "TCP"}]
    assert ep["metadata"]["labels"] == {"app": "nginx"}
    rv = ep["metadata"]["resourceVersion"]
    controllers.queue.add("default/nginx")
    wait_for(lambda: len(controllers.queue) == 0)
    assert api.get("Endpoints", "nginx", "default")["metadata"]["resourceVersion"] == rv, (
        "no write without change"
    )
    # a pod that stops being ready moves to notReadyAddresses
    victim = copy.deepcopy(api.list("Pod", "default")[0][0])
    kubelet.paused.set()
    victim = api.get("Pod", victim["metadata"]["name"], "default")
    victim["metadata"]["labels"]["hold"] = "yes"
    api.update(victim)
    kubelet.paused.clear()
    wait_for(lambda: addresses(api) == (4, 1), what="not-ready split")
    api.delete("Service", "nginx", "default")
    wait_for(lambda: addresses(api) == (-1, -1), what="endpoints deleted")
