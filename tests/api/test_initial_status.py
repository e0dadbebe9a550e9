"""The status a new object starts with (as kube-apiserver's create strategies set it) and QoS."""

from __future__ import annotations

from typing import Any

from nbkube.api.initial_status import fill_initial_status, pod_qos_class


def _pod(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "spec": {
            "containers": [{"name": f"c{i}", "image": "x", "resources": r} for i, r in enumerate(resources)]
        },
    }


def test_qos_classes() -> None:
    assert pod_qos_class(_pod({})) == "BestEffort"
    assert pod_qos_class(_pod({"requests": {"cpu": "100m"}})) == "Burstable"
    both = {"cpu": "1", "memory": "1Gi"}
    assert pod_qos_class(_pod({"limits": both})) == "Guaranteed"  # requests default to limits
    assert (
        pod_qos_class(_pod({"limits": both, "requests": {"cpu": "1000m", "memory": "1Gi"}})) == "Guaranteed"
    )
    assert pod_qos_class(_pod({"limits": both, "requests": {"cpu": "500m"}})) == "Burstable"
    assert pod_qos_class(_pod({"limits": both}, {})) == "Burstable"  # one container without limits
    assert pod_qos_class(_pod({"limits": {"cpu": "1"}})) == "Burstable"  # memory unlimited


def test_initial_status_per_kind() -> None:
    pod = _pod({})
    fill_initial_status(pod)
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    svc: dict[str, Any] = {"kind": "Service", "spec": {}}
    fill_initial_status(svc)
    assert svc["status"] == {"loadBalancer": {}}
    for kind in ("ReplicationController", "ReplicaSet"):
        rc: dict[str, Any] = {"kind": kind}
        fill_initial_status(rc)
        assert rc["status"] == {"replicas": 0}
    ns: dict[str, Any] = {"kind": "Namespace"}
    fill_initial_status(ns)
    assert ns["status"] == {"phase": "Active"}
    deploy: dict[str, Any] = {"kind": "Deployment"}
    fill_initial_status(deploy)
    assert deploy["status"] == {}
    cm: dict[str, Any] = {"kind": "ConfigMap"}
    fill_initial_status(cm)
    assert "status" not in cm


def test_what_the_creator_set_is_kept() -> None:
    pod = {**_pod({}), "status": {"phase": "Running"}}
    fill_initial_status(pod)
    assert pod["status"] == {"phase": "Running", "qosClass": "BestEffort"}
    odd: dict[str, Any] = {"kind": "Pod", "status": "nonsense"}
    fill_initial_status(odd)
    assert odd["status"] == "nonsense"  # left for validation to name
