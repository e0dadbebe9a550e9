"""metrics.k8s.io/v1beta1 from the registry's MetricsStore (get, list, label selectors, all
namespaces, 404s, no writes but a node's own report), and autoscaling/v1 served by conversion
(create, get, list, watch events in v1; patches refused with the reason)."""

from __future__ import annotations

import json
import time

from nbk_apitest import Kubectl, call

from nbkube.apiserver import ApiServer
from nbkube.apiserver.noderestriction import NODES_GROUP
from nbkube.registry.metrics import ContainerUsage, NodeUsage, PodUsage, node_metrics_obj, pod_metrics_obj
from nbkube.registry.registry import Registry

M = "/apis/metrics.k8s.io/v1beta1"


def _fill(registry: Registry) -> None:
    now = time.time()
    registry.metrics.report(
        NodeUsage("n1", now, 10, 300_000_000, 64 * 1024 * 1024, {"zone": "a"}),
        [
            PodUsage("default", "web-1", now, 10, (ContainerUsage("c", 200_000_000, 32 * 1024 * 1024),), {"app": "web"}),
            PodUsage("team", "db-1", now, 10, (ContainerUsage("c", 100_000_000, 32 * 1024 * 1024),), {"app": "db"}),
        ],
    )


def test_get_list_and_select(server: ApiServer, registry: Registry) -> None:
    _fill(registry)
    code, body, _ = call(server, "GET", f"{M}/namespaces/default/pods")
    assert code == 200 and body["kind"] == "PodMetricsList" and [i["metadata"]["name"] for i in body["items"]] == ["web-1"]
    code, body, _ = call(server, "GET", f"{M}/pods?labelSelector=app%3Ddb")
    assert [i["metadata"]["namespace"] for i in body["items"]] == ["team"]
    code, body, _ = call(server, "GET", f"{M}/namespaces/default/pods/web-1")
    assert code == 200 and body["containers"][0]["usage"] == {"cpu": "200000000n", "memory": "32768Ki"}
    assert call(server, "GET", f"{M}/namespaces/default/pods/nope")[0] == 404
    code, body, _ = call(server, "GET", f"{M}/nodes?labelSelector=zone%3Da")
    assert [i["metadata"]["name"] for i in body["items"]] == ["n1"]
    assert call(server, "GET", f"{M}/nodes?labelSelector=zone%3Db")[1]["items"] == []
    assert call(server, "GET", f"{M}/nodes/n1")[1]["usage"]["cpu"] == "300000000n"
    assert call(server, "DELETE", f"{M}/nodes/n1")[0] == 405


def test_kubectl_top(kubectl: Kubectl, registry: Registry) -> None:
    _fill(registry)
    registry.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    out = kubectl.ok("top", "pods", "-A")
    assert "web-1" in out and "200m" in out and "db-1" in out
    assert "n1" in kubectl.ok("top", "nodes") and "300m" in kubectl.ok("top", "nodes")


def test_a_node_reports_only_for_itself(server: ApiServer, registry: Registry) -> None:
    now = time.time()
    body = {**node_metrics_obj(NodeUsage("n2", now, 5, 1_000_000, 1024 * 1024)), "pods": [
        pod_metrics_obj(PodUsage("default", "p", now, 5, (ContainerUsage("c", 1_000_000, 1024 * 1024),)))
    ]}  # fmt: skip
    code, _, _ = call(server, "PUT", f"{M}/nodes/n2", body, user="system:node:n2", groups=(NODES_GROUP,))
    assert code == 200 and registry.metrics.node("n2") is not None and registry.metrics.pod("default", "p")
    code, err, _ = call(server, "PUT", f"{M}/nodes/n2", body, user="system:node:n3", groups=(NODES_GROUP,))
    assert code == 403 and "only for itself" in err["message"]
    code, err, _ = call(server, "PUT", f"{M}/nodes/other", body)
    assert code == 400 and "does not match" in err["message"]


HPA_V1 = {
    "apiVersion": "autoscaling/v1",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "web"},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "maxReplicas": 4,
        "targetCPUUtilizationPercentage": 60,
    },
}
V1 = "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers"
V2 = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers"


def test_autoscaling_v1_by_conversion(server: ApiServer, registry: Registry) -> None:
    code, made, _ = call(server, "POST", V1, HPA_V1)
    assert code == 201, made
    assert made["apiVersion"] == "autoscaling/v1" and made["spec"]["targetCPUUtilizationPercentage"] == 60
    assert made["spec"]["minReplicas"] == 1 and "annotations" not in made["metadata"]
    stored = registry.get("HorizontalPodAutoscaler", "web", "default")
    assert stored["apiVersion"] == "autoscaling/v2"
    assert stored["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 60}
    code, listed, _ = call(server, "GET", V1)
    assert listed["kind"] == "HorizontalPodAutoscalerList" and listed["apiVersion"] == "autoscaling/v1"
    assert listed["items"][0]["spec"]["targetCPUUtilizationPercentage"] == 60
    code, v2, _ = call(server, "GET", f"{V2}/web")
    assert v2["apiVersion"] == "autoscaling/v2" and "targetCPUUtilizationPercentage" not in v2["spec"]
    code, err, _ = call(server, "PATCH", f"{V1}/web", {"spec": {"maxReplicas": 5}}, content_type="application/merge-patch+json")
    assert code == 400 and "autoscaling/v2" in err["message"]
    code, watched, _ = call(server, "GET", f"{V1}?watch=true&timeoutSeconds=1")
    first = json.loads(watched.splitlines()[0]) if isinstance(watched, str) else watched
    assert first["object"]["apiVersion"] == "autoscaling/v1"


def test_v2_only_fields_survive_a_v1_round_trip() -> None:
    from nbkube.api.hpa import v1_to_v2, v2_to_v1

    v2 = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "maxReplicas": 3,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "64Mi"}}},
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 30}},
        },
        "status": {"conditions": [{"type": "AbleToScale", "status": "True"}], "currentReplicas": 1},
    }
    assert v1_to_v2(v2_to_v1(v2)) == v2


def test_tables_and_no_watch(server: ApiServer, registry: Registry) -> None:
    _fill(registry)
    table_accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    code, table, _ = call(server, "GET", f"{M}/namespaces/default/pods", accept=table_accept)
    assert code == 200 and table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["NAME", "CPU", "MEMORY", "WINDOW"]
    assert table["rows"][0]["cells"] == ["web-1", "200m", "32Mi", "10s"]
    code, nodes, _ = call(server, "GET", f"{M}/nodes/n1", accept=table_accept)
    assert nodes["rows"][0]["cells"] == ["n1", "300m", "64Mi", "10s"]
    code, err, _ = call(server, "GET", f"{M}/pods?watch=true")
    assert code == 405 and "get and list only" in err["message"]
