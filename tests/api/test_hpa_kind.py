"""HorizontalPodAutoscaler in the api layer: defaults as upstream's, field errors for bad specs and
for metric types nbkube's autoscaler cannot read, strict field names, and kubectl's columns."""

from __future__ import annotations

import copy
from typing import Any

from nbkube.api.defaults import apply_defaults
from nbkube.api.fieldnames import unknown_fields
from nbkube.api.printers import table_rows
from nbkube.api.validation import validate

HPA: dict[str, Any] = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 4},
}


def _errors(spec_change: dict[str, Any]) -> dict[str, str]:
    obj = copy.deepcopy(HPA)
    obj["spec"].update(spec_change)
    return {e.path: e.message for e in validate(apply_defaults(obj))}


def test_defaults() -> None:
    obj = apply_defaults(copy.deepcopy(HPA))
    assert obj["spec"]["minReplicas"] == 1
    assert obj["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}
    ]
    assert "behavior" not in obj["spec"]
    with_behavior = copy.deepcopy(HPA)
    with_behavior["spec"]["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": 60}}
    b = apply_defaults(with_behavior)["spec"]["behavior"]
    assert b["scaleDown"] == {
        "stabilizationWindowSeconds": 60,
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
    }
    assert b["scaleUp"]["policies"][0] == {"type": "Pods", "value": 4, "periodSeconds": 15}
    assert validate(apply_defaults(copy.deepcopy(HPA))) == []


def test_field_errors() -> None:
    assert "spec.maxReplicas" in _errors({"minReplicas": 5, "maxReplicas": 2})
    assert "spec.minReplicas" in _errors({"minReplicas": 0})
    assert "spec.scaleTargetRef.name" in _errors({"scaleTargetRef": {"kind": "Deployment"}})
    pods_metric = {"metrics": [{"type": "Pods", "pods": {}}]}
    assert "resource metrics" in " ".join(_errors(pods_metric).values())
    gpu = {"metrics": [{"type": "Resource", "resource": {"name": "gpu", "target": {"type": "Utilization", "averageUtilization": 5}}}]}
    assert "spec.metrics[0].resource.name" in _errors(gpu)
    value = {"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Value", "value": "1"}}}]}
    assert "spec.metrics[0].resource.target.type" in _errors(value)
    avg = {"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "AverageValue", "averageValue": "abc"}}}]}
    assert "spec.metrics[0].resource.target.averageValue" in _errors(avg)
    policy = {"behavior": {"scaleUp": {"selectPolicy": "Most", "policies": [{"type": "Pods", "value": 0, "periodSeconds": 4000}]}}}
    errs = _errors(policy)
    assert {"spec.behavior.scaleUp.selectPolicy", "spec.behavior.scaleUp.policies[0].value",
            "spec.behavior.scaleUp.policies[0].periodSeconds"} <= set(errs)  # fmt: skip


def test_strict_field_names() -> None:
    obj = copy.deepcopy(HPA)
    obj["spec"]["maxReplica"] = 3
    assert [e.path for e in unknown_fields(obj)] == ["spec.maxReplica"]
    nested = copy.deepcopy(HPA)
    nested["spec"]["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "targt": {}}}]
    nested["spec"]["behavior"] = {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "period": 15}]}}
    assert sorted(e.path for e in unknown_fields(nested)) == [
        "spec.behavior.scaleUp.policies[0].period",
        "spec.metrics[0].resource.targt",
    ]


def test_kubectl_columns() -> None:
    obj = apply_defaults(copy.deepcopy(HPA))
    obj["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    headers, rows = table_rows("hpa", [obj], now=1767225600.0 + 30)
    assert headers == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    assert rows == [["web", "Deployment/web", "cpu: <unknown>/80%", "1", "4", "0", "30s"]]
    obj["status"] = {
        "currentReplicas": 2,
        "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 37}}}],
    }
    assert table_rows("hpa", [obj], now=1767225600.0 + 30)[1][0][2:6] == ["cpu: 37%/80%", "1", "4", "2"]
