"""EndpointSlice controllers: slices from pods (conditions, hostnames, labels), mirrored Endpoints of
selector-less Services, write-on-change, and cleanup when the Service goes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from nbk_workload_helpers import FakeKubelet, rc_manifest, started, wait_for
from test_endpoints_controller import pod, service

from nbkube.client.informer import InformerFactory
from nbkube.controlplane.controllers.endpointslice import (
    MANAGED_BY,
    MIRROR_MANAGED_BY,
    EndpointSliceController,
    EndpointSliceMirroringController,
    compute_slices,
    mirror_slices,
)
from nbkube.controlplane.controllers.replication import ReplicationManager
from nbkube.registry.registry import Registry


def test_slices_carry_conditions_hostnames_and_labels() -> None:
    svc = service([{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}])
    svc["metadata"]["uid"] = "svc-uid"
    a = pod("a", "10.0.0.2", True)
    a["spec"].update(hostname="db-0", subdomain="nginx")
    b = pod("b", "10.0.0.3", False)
    c = pod("c", "10.0.0.4", True)
    c["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    slices = compute_slices(svc, [c, b, a, pod("d", "", False)])
    assert len(slices) == 1
    sl = slices[0]
    assert sl["metadata"]["labels"] == {
        "app": "nginx",
        "kubernetes.io/service-name": "nginx",
        "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
    }
    assert sl["metadata"]["ownerReferences"][0]["uid"] == "svc-uid"
    assert sl["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    got = [(e["addresses"][0], e.get("hostname"), e["conditions"]) for e in sl["endpoints"]]
    assert got == [
        ("10.0.0.2", "db-0", {"ready": True, "serving": True, "terminating": False}),
        ("10.0.0.3", None, {"ready": False, "serving": False, "terminating": False}),
        ("10.0.0.4", None, {"ready": False, "serving": True, "terminating": True}),
    ]
    assert compute_slices(svc, [a, b, c]) == slices, "deterministic, stable names"
    empty = compute_slices(svc, [])
    assert empty[0]["endpoints"] == [] and empty[0]["metadata"]["name"] != ""


def test_mirrored_slices_of_a_selector_less_service() -> None:
    svc = {"metadata": {"name": "ext", "namespace": "default"}, "spec": {"ports": [{"port": 53}]}}
    ep = {"subsets": [{"addresses": [{"ip": "10.240.0.1"}], "notReadyAddresses": [{"ip": "10.240.0.2"}],
                       "ports": [{"name": "dns", "port": 5353, "protocol": "UDP"}]}]}  # fmt: skip
    [sl] = mirror_slices(svc, ep)
    assert sl["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == MIRROR_MANAGED_BY
    assert [(e["addresses"], e["conditions"]["ready"]) for e in sl["endpoints"]] == [
        (["10.240.0.1"], True),
        (["10.240.0.2"], False),
    ]
    assert mirror_slices(svc, None) == []


@pytest.fixture
def running(api: Registry, factory: InformerFactory) -> Iterator[EndpointSliceController]:
    sc = EndpointSliceController(api, factory)
    mc = EndpointSliceMirroringController(api, factory)
    rc = ReplicationManager(api, factory)
    with started(factory, sc, mc, rc):
        yield sc


def _ready(api: Registry, name: str = "nginx") -> int:
    items = api.list("EndpointSlice", "default", label_selector=f"kubernetes.io/service-name={name}")[0]
    return sum(1 for s in items for e in s.get("endpoints") or [] if e["conditions"]["ready"])


def test_slices_follow_pods_and_service(api: Registry, running: EndpointSliceController, kubelet: FakeKubelet) -> None:
    api.create(rc_manifest(replicas=3))
    api.create(service())
    wait_for(lambda: _ready(api) == 3, what="3 ready endpoints in slices")
    [sl] = api.list("EndpointSlice", "default")[0]
    rv = sl["metadata"]["resourceVersion"]
    running.queue.add("default/nginx")
    wait_for(lambda: len(running.queue) == 0)
    assert api.get("EndpointSlice", sl["metadata"]["name"], "default")["metadata"]["resourceVersion"] == rv
    # a selector-less Service's hand-written Endpoints are mirrored
    api.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext", "namespace": "default"},
                "spec": {"ports": [{"port": 53, "protocol": "UDP"}]}})  # fmt: skip
    api.create({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "ext", "namespace": "default"},
                "subsets": [{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"port": 5353, "protocol": "UDP"}]}]})  # fmt: skip
    wait_for(lambda: _ready(api, "ext") == 1, what="mirrored slice")
    api.delete("Service", "nginx", "default")
    wait_for(lambda: _ready(api) == 0 and len(api.list("EndpointSlice", "default")[0]) == 1, what="cleanup")
