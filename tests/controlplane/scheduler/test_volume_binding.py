"""Volumes end to end in the control plane: the VolumeBinding filter, the selected-node pre-bind,
the local-path provisioner and the PV binder (bind, release, reclaim), and bad storage input."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nbk_sched_objects import node, pod

from nbkube.client.informer import InformerFactory
from nbkube.controlplane.controllers.volumebinding import (
    PROVISIONER,
    SELECTED_NODE,
    VolumeBinder,
    ensure_default_class,
    volume_fits,
)
from nbkube.controlplane.scheduler import Scheduler
from nbkube.controlplane.scheduler.framework import NodeInfo, PodInfo
from nbkube.errors import Invalid
from nbkube.registry.registry import Registry


def wait_for(pred: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def add_node(api: Registry, obj: dict[str, Any]) -> None:
    status = obj.pop("status")
    created = api.create(obj)
    api.update_status({**created, "status": status})


def claim(name: str, size: str = "1Gi", cls: str | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if cls is not None:
        spec["storageClassName"] = cls
    spec.update(extra)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


def local_pv(
    name: str, node_name: str, path: str, size: str = "1Gi", cls: str = "manual", policy: str = "Retain"
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": policy,
            "storageClassName": cls,
            "local": {"path": path},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node_name]}
                            ]
                        }
                    ]
                }
            },
        },
    }


def manual_class(
    mode: str = "WaitForFirstConsumer", provisioner: str = "kubernetes.io/no-provisioner"
) -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "manual"},
        "provisioner": provisioner,
        "volumeBindingMode": mode,
    }


def claim_pod(name: str, claim_name: str) -> dict[str, Any]:
    p = pod(name)
    p["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}]
    return p


@pytest.fixture
def plane(api: Registry) -> Iterator[tuple[Scheduler, VolumeBinder]]:
    factory = InformerFactory(api)
    sched = Scheduler(api, factory, async_bind=False)
    binder = VolumeBinder(api, factory)
    factory.start_all()
    assert factory.wait_all_synced(5)
    sched.start()
    binder.start()
    yield sched, binder
    binder.stop()
    sched.stop()
    factory.stop_all()


def events(api: Registry, reason: str) -> list[dict[str, Any]]:
    items, _ = api.list("Event", "default")
    return [e for e in items if e["reason"] == reason]


def test_pod_goes_to_the_node_of_its_bound_local_volume(api: Registry, plane: Any, tmp_path: Path) -> None:
    for n in ("n1", "n2", "n3"):
        add_node(api, node(n))
    api.create(manual_class(mode="Immediate"))
    api.create(local_pv("pv-small", "n1", str(tmp_path / "a"), size="1Gi", cls="manual"))
    api.create(local_pv("pv-big", "n3", str(tmp_path / "b"), size="5Gi", cls="manual"))
    api.create(claim("data", size="2Gi", cls="manual"))
    bound = wait_for(
        lambda: (
            (c := api.get("PersistentVolumeClaim", "data", "default"))["status"].get("phase") == "Bound" and c
        ),
        what="claim Bound",
    )
    assert bound["spec"]["volumeName"] == "pv-big"  # the only one large enough
    assert bound["status"]["capacity"] == {"storage": "5Gi"}
    pv = wait_for(
        lambda: (v := api.get("PersistentVolume", "pv-big"))["status"].get("phase") == "Bound" and v
    )
    assert pv["spec"]["claimRef"]["name"] == "data"
    assert wait_for(lambda: api.get("PersistentVolume", "pv-small")["status"].get("phase") == "Available")
    for i in range(3):
        api.create(claim_pod(f"p{i}", "data"))
    for i in range(3):
        assert wait_for(lambda i=i: api.get("Pod", f"p{i}", "default")["spec"].get("nodeName")) == "n3"


def test_wait_for_first_consumer_provisions_a_folder_on_the_chosen_node(
    api: Registry, plane: Any, tmp_path: Path
) -> None:
    add_node(api, node("n1"))
    add_node(api, node("n2", labels={"disk": "yes"}))
    ensure_default_class(api, str(tmp_path / "local-path"))
    ensure_default_class(api, "/elsewhere")  # a second call changes nothing
    assert api.get("StorageClass", "local-path")["parameters"]["path"] == str(tmp_path / "local-path")
    api.create(claim("data"))  # no class: the default one
    wait_for(lambda: events(api, "WaitForFirstConsumer"), what="waiting event")
    assert api.get("PersistentVolumeClaim", "data", "default")["status"]["phase"] == "Pending"
    p = claim_pod("web", "data")
    p["spec"]["nodeSelector"] = {"disk": "yes"}
    api.create(p)
    c = wait_for(
        lambda: (
            (c := api.get("PersistentVolumeClaim", "data", "default"))["status"].get("phase") == "Bound" and c
        ),
        what="claim Bound",
    )
    assert c["metadata"]["annotations"][SELECTED_NODE] == "n2"
    assert c["spec"]["storageClassName"] == "local-path"
    pv = api.get("PersistentVolume", c["spec"]["volumeName"])
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == PROVISIONER
    assert pv["spec"]["local"]["path"] == str(tmp_path / "local-path" / "n2" / pv["metadata"]["name"])
    assert os.path.isdir(pv["spec"]["local"]["path"])
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0][
        "values"
    ] == ["n2"]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert wait_for(lambda: api.get("Pod", "web", "default")["spec"].get("nodeName")) == "n2"
    # PreBind waited for the binder: the claim was Bound (its last write) before the pod was bound
    bound_claim = api.get("PersistentVolumeClaim", "data", "default")
    assert int(bound_claim["metadata"]["resourceVersion"]) < int(
        api.get("Pod", "web", "default")["metadata"]["resourceVersion"]
    )
    # reclaim policy Delete: the claim goes, the volume and its folder follow once no pod uses it
    api.delete("PersistentVolumeClaim", "data", "default")
    wait_for(lambda: api.get("PersistentVolume", pv["metadata"]["name"])["status"]["phase"] == "Released")
    plane[1].reconcile(f"volume:{pv['metadata']['name']}")  # a pass with the pod still there
    assert api.get("PersistentVolume", pv["metadata"]["name"])  # kept while web runs
    assert os.path.isdir(pv["spec"]["local"]["path"])
    api.delete("Pod", "web", "default")
    wait_for(lambda: not api.list("PersistentVolume")[0], what="volume deleted")
    assert not os.path.exists(pv["spec"]["local"]["path"])


def test_retained_volume_is_released(api: Registry, plane: Any, tmp_path: Path) -> None:
    api.create(manual_class(mode="Immediate"))
    api.create(local_pv("pv1", "n1", str(tmp_path / "a")))
    api.create(claim("data", cls="manual"))
    wait_for(lambda: api.get("PersistentVolume", "pv1")["status"].get("phase") == "Bound")
    api.delete("PersistentVolumeClaim", "data", "default")
    wait_for(lambda: api.get("PersistentVolume", "pv1")["status"].get("phase") == "Released", what="Released")


def test_immediate_local_path_class_is_refused_with_an_event(
    api: Registry, plane: Any, tmp_path: Path
) -> None:
    api.create(manual_class(mode="Immediate", provisioner=PROVISIONER))
    api.create(claim("data", cls="manual"))
    found = wait_for(lambda: events(api, "ProvisioningFailed"), what="ProvisioningFailed")
    assert "WaitForFirstConsumer" in found[0]["message"] and found[0]["type"] == "Warning"


def test_unbound_immediate_claim_and_missing_claim_keep_the_pod_pending(api: Registry, plane: Any) -> None:
    add_node(api, node("n1"))
    api.create(manual_class(mode="Immediate"))
    api.create(claim("data", cls="manual"))
    api.create(claim_pod("a", "data"))
    api.create(claim_pod("b", "nothing"))

    def message(name: str) -> str:
        for c in api.get("Pod", name, "default").get("status", {}).get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("status") == "False":
                return str(c.get("message"))
        return ""

    assert "unbound immediate PersistentVolumeClaims" in wait_for(lambda: message("a"))
    assert 'persistentvolumeclaim "nothing" not found' in wait_for(lambda: message("b"))


def test_filter_refuses_the_other_nodes_of_a_bound_volume() -> None:
    class Cache:
        def __init__(self, items: dict[str, dict[str, Any]]):
            self.items = items

        def get(self, key: str) -> dict[str, Any] | None:
            return self.items.get(key)

        def list(self) -> list[dict[str, Any]]:
            return list(self.items.values())

    from nbkube.controlplane.scheduler.plugins.volume_binding import MSG_CONFLICT, VolumeBinding

    bound = claim("data", cls="manual", volumeName="pv1")
    plugin = VolumeBinding(
        Cache({"default/data": bound}), Cache({"pv1": local_pv("pv1", "n2", "/x")}), Cache({})
    )
    info = PodInfo(claim_pod("p", "data"))
    assert plugin.applies(info) and not plugin.applies(PodInfo(pod("plain")))
    assert plugin.filter(info, NodeInfo(node("n1"))) == [MSG_CONFLICT]
    assert plugin.filter(info, NodeInfo(node("n2"))) == []


def test_volume_fits_checks_class_size_modes_and_selector() -> None:
    pv = local_pv("pv1", "n1", "/x", size="1Gi")
    pv["metadata"]["labels"] = {"tier": "fast"}
    assert volume_fits(pv, claim("c", size="1Gi"), "manual")
    assert not volume_fits(pv, claim("c", size="2Gi"), "manual")
    assert not volume_fits(pv, claim("c"), "other")
    assert not volume_fits(pv, claim("c", accessModes=["ReadWriteMany"]), "manual")
    assert volume_fits(pv, claim("c", selector={"matchLabels": {"tier": "fast"}}), "manual")
    assert not volume_fits(pv, claim("c", selector={"matchLabels": {"tier": "slow"}}), "manual")


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (
            {
                **local_pv("pv", "n1", "/x"),
                "spec": {k: v for k, v in local_pv("pv", "n1", "/x")["spec"].items() if k != "nodeAffinity"},
            },
            "spec.nodeAffinity",
        ),
        (local_pv("pv", "n1", "relative/path"), "spec.local.path"),
        (
            {
                **local_pv("pv", "n1", "/x"),
                "spec": {**local_pv("pv", "n1", "/x")["spec"], "nfs": {"server": "a"}},
            },
            "spec",
        ),
        (
            {
                **local_pv("pv", "n1", "/x"),
                "spec": {**local_pv("pv", "n1", "/x")["spec"], "persistentVolumeReclaimPolicy": "Recycle"},
            },
            "spec.persistentVolumeReclaimPolicy",
        ),
        (claim("c", size="0"), "spec.resources.requests[storage]"),
        (claim("c", size="lots"), "spec.resources.requests[storage]"),
        (claim("c", accessModes=["ReadWriteSometimes"]), "spec.accessModes[0]"),
        (claim("c", accessModes=[]), "spec.accessModes"),
        (claim("c", volumeMode="Block"), "spec.volumeMode"),
        (claim("c", dataSource={"kind": "PersistentVolumeClaim", "name": "x"}), "spec.dataSource"),
        ({**manual_class(), "volumeBindingMode": "Later"}, "volumeBindingMode"),
        ({**manual_class(), "reclaimPolicy": "Recycle"}, "reclaimPolicy"),
        ({k: v for k, v in manual_class().items() if k != "provisioner"}, "provisioner"),
    ],
)
def test_bad_storage_objects_are_refused(api: Registry, obj: dict[str, Any], field: str) -> None:
    with pytest.raises(Invalid) as info:
        api.create(obj)
    assert field in str(info.value)


def test_claim_spec_is_immutable_but_volume_name_is_set_once(api: Registry) -> None:
    api.create(claim("c", cls="manual"))
    with pytest.raises(Invalid):
        api.patch("PersistentVolumeClaim", "c", "default", {"spec": {"accessModes": ["ReadWriteMany"]}})
    api.patch("PersistentVolumeClaim", "c", "default", {"spec": {"volumeName": "pv1"}})
    with pytest.raises(Invalid):
        api.patch("PersistentVolumeClaim", "c", "default", {"spec": {"volumeName": "pv2"}})
    api.create(manual_class())
    with pytest.raises(Invalid):
        api.patch("StorageClass", "manual", "", {"provisioner": "other.io/x"})


def test_a_claim_the_cache_has_not_seen_is_read_once_per_pod(api: Registry) -> None:
    from nbkube.controlplane.scheduler.plugins.volume_binding import MSG_IMMEDIATE, VolumeBinding

    class Empty:
        def get(self, key: str) -> None:
            return None

        def list(self) -> list[dict[str, Any]]:
            return []

    reads: list[str] = []

    class Counting:
        def get(self, kind: str, name: str, namespace: str = "") -> dict[str, Any]:
            reads.append(name)
            return api.get(kind, name, namespace)

    api.create(claim("fresh", cls="manual"))
    plugin = VolumeBinding(Empty(), Empty(), Empty(), api=Counting())  # type: ignore[arg-type]
    info = PodInfo(
        {**claim_pod("p", "fresh"), "metadata": {"name": "p", "namespace": "default", "uid": "u1"}}
    )
    for n in ("n1", "n2", "n3"):
        # found by the live read: refused for what it is (unbound, no class), not as missing
        assert plugin.filter(info, NodeInfo(node(n))) == [MSG_IMMEDIATE]
    assert reads == ["fresh"]
