"""apply_defaults: what Kubernetes fills in, idempotence, and tolerance of malformed objects."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from nbkube.api.defaults import apply_defaults, image_pull_policy, preserve_allocated
from nbkube.api.serialization import load_manifests
from nbkube.api.validation import validate, validate_update

DATA = Path(__file__).parent / "data"


def test_pod_defaults() -> None:
    pod = apply_defaults(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {
                "containers": [
                    {
                        "name": "a",
                        "image": "busybox:1.36",
                        "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"port": 8080}},
                    }
                ],
                "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "c"}}],
            },
        }
    )
    assert pod["metadata"]["namespace"] == "default"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["schedulerName"] == "default-scheduler"
    c = spec["containers"][0]
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert c["readinessProbe"] == {
        "httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert spec["volumes"] == [
        {"name": "scratch", "emptyDir": {}},
        {"name": "cfg", "configMap": {"name": "c", "defaultMode": 0o644}},
    ]
    assert "status" not in pod  # phase is set by the registry/kubelet, not by defaulting


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("localhost:5000/nginx", "Always"),
        ("localhost:5000/nginx:1.0", "IfNotPresent"),
        ("nginx@sha256:abcd", "IfNotPresent"),
    ],
)
def test_image_pull_policy(image: str, policy: str) -> None:
    assert image_pull_policy(image) == policy


def test_empty_strings_count_as_unset() -> None:
    svc = apply_defaults(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s", "namespace": ""},
            "spec": {"type": "", "ports": [{"port": 80, "protocol": ""}]},
        }
    )
    assert svc["metadata"]["namespace"] == "default"
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"][0]["protocol"] == "TCP"


def test_existing_values_are_kept() -> None:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "team-a"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "a", "image": "x", "imagePullPolicy": "Never"}],
        },
    }
    apply_defaults(pod)
    assert pod["metadata"]["namespace"] == "team-a"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Never"


def test_rc_defaults_selector_labels_and_replicas_from_template() -> None:
    rc = apply_defaults(
        {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"name": "r"},
            "spec": {
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "a", "image": "x"}]},
                }
            },
        }
    )
    assert rc["spec"]["selector"] == {"app": "web"}
    assert rc["spec"]["replicas"] == 1
    assert rc["metadata"]["labels"] == {"app": "web"}
    assert rc["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert validate(rc) == []
    # an explicit selector and explicit labels are kept
    rc2 = copy.deepcopy(rc)
    rc2["spec"]["selector"] = {"app": "other"}
    rc2["metadata"]["labels"] = {"team": "a"}
    apply_defaults(rc2)
    assert rc2["spec"]["selector"] == {"app": "other"}
    assert rc2["metadata"]["labels"] == {"team": "a"}


def test_deployment_and_replicaset_defaults() -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a", "image": "x"}]}}
    dep = apply_defaults(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template},
        }
    )
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert dep["spec"]["revisionHistoryLimit"] == 10
    assert dep["spec"]["progressDeadlineSeconds"] == 600
    assert "labels" not in dep["metadata"]  # apps/v1 does not copy template labels
    recreate = apply_defaults(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {"strategy": {"type": "Recreate"}},
        }
    )
    assert recreate["spec"]["strategy"] == {"type": "Recreate"}
    rs = apply_defaults(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "r"},
            "spec": {"template": copy.deepcopy(template)},
        }
    )
    assert rs["spec"]["replicas"] == 1
    assert rs["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


def test_service_defaults() -> None:
    svc = apply_defaults(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]},
        }
    )
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["sessionAffinity"] == "None"
    assert svc["spec"]["ports"] == [
        {"port": 80, "protocol": "TCP", "targetPort": 80},
        {"port": 53, "protocol": "UDP", "targetPort": "dns"},
    ]
    assert "clusterIP" not in svc["spec"]  # allocated at admission, not defaulted


def test_other_kinds() -> None:
    ns = apply_defaults({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}})
    labels = {"kubernetes.io/metadata.name": "a"}  # as Kubernetes 1.21+
    assert ns == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "labels": labels}}
    node = apply_defaults({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}})
    assert "namespace" not in node["metadata"]
    secret = apply_defaults(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"pw": "secret"}}
    )
    assert secret["data"] == {"pw": "c2VjcmV0"} and "stringData" not in secret and secret["type"] == "Opaque"
    np = apply_defaults(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "n"},
            "spec": {"podSelector": {}, "egress": [{}]},
        }
    )
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    lr = apply_defaults(
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": "l"},
            "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]},
        }
    )
    assert lr["spec"]["limits"][0]["default"] == {"cpu": "1"}
    assert lr["spec"]["limits"][0]["defaultRequest"] == {"cpu": "1"}
    unknown = {"apiVersion": "v1", "kind": "Gadget"}
    assert apply_defaults(unknown) == {"apiVersion": "v1", "kind": "Gadget"}


ALL_KINDS_YAML = (DATA / "all_kinds.yaml").read_text()


def test_defaults_are_idempotent() -> None:
    texts = [(DATA / "rc.yaml").read_text(), (DATA / "service.yaml").read_text(), ALL_KINDS_YAML]
    for text in texts:
        for raw in yaml.safe_load_all(text):
            once = apply_defaults(copy.deepcopy(raw))
            twice = apply_defaults(copy.deepcopy(once))
            assert once == twice, raw["kind"]
            assert validate(once) == [], raw["kind"]
    objs = load_manifests(ALL_KINDS_YAML)
    assert [apply_defaults(copy.deepcopy(o)) for o in objs] == objs


@pytest.mark.parametrize(
    "spec",
    [
        "five",
        {"containers": "x", "volumes": 3},
        {"containers": [1, None, {"image": 5, "ports": "80", "livenessProbe": []}]},
        {"template": [], "selector": 7, "ports": [1, {"port": "x"}], "strategy": "fast"},
        {"template": {"metadata": "m", "spec": None}},
    ],
)
def test_defaults_never_crash_on_malformed_objects(spec: Any) -> None:
    for kind, version in (
        ("Pod", "v1"),
        ("ReplicationController", "v1"),
        ("Deployment", "apps/v1"),
        ("Service", "v1"),
    ):
        obj = {"apiVersion": version, "kind": kind, "metadata": {"name": "x"}, "spec": copy.deepcopy(spec)}
        apply_defaults(obj)
        assert validate(obj), (kind, spec)  # still reported, not "fixed"
    assert apply_defaults({"apiVersion": "v1", "kind": "Pod", "metadata": "m"})["metadata"] == "m"


def test_preserve_allocated_keeps_cluster_ip_node_ports_and_node_name() -> None:
    [svc] = load_manifests((DATA / "service.yaml").read_text())
    stored = copy.deepcopy(svc)
    stored["spec"]["clusterIP"] = "10.96.0.20"
    stored["spec"]["clusterIPs"] = ["10.96.0.20"]
    stored["spec"]["ports"][0]["nodePort"] = 30001
    again = copy.deepcopy(svc)
    del again["spec"]["ports"][0]["nodePort"]
    preserve_allocated(again, stored)
    assert again["spec"]["clusterIP"] == "10.96.0.20"
    assert again["spec"]["ports"][0]["nodePort"] == 30001
    assert validate_update(again, stored) == []
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": []},
    }
    bound = copy.deepcopy(pod)
    bound["spec"]["nodeName"] = "n1"
    assert preserve_allocated(pod, bound)["spec"]["nodeName"] == "n1"


def test_a_namespace_carries_its_name_as_a_label_which_cannot_be_spoofed() -> None:
    from nbkube.api.defaults import NAMESPACE_NAME_LABEL

    ns = apply_defaults({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tenant-a"}})
    assert ns["metadata"]["labels"] == {NAMESPACE_NAME_LABEL: "tenant-a"}
    spoof = {"name": "tenant-b", "labels": {NAMESPACE_NAME_LABEL: "tenant-a", "team": "x"}}
    ns = apply_defaults({"apiVersion": "v1", "kind": "Namespace", "metadata": spoof})
    assert ns["metadata"]["labels"] == {NAMESPACE_NAME_LABEL: "tenant-b", "team": "x"}
