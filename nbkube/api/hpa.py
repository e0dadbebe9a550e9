"""HorizontalPodAutoscaler (`autoscaling/v2`): defaults, the v1 conversion and the printer row.

Why one module: the pieces of the kind that the api layer owns (validation is `validate_hpa.py`),
so the shared tables (`defaults.py`, `printers.py`) each gain one line. nbkube stores v2; `autoscaling/v1`
(what `kubectl autoscale` sends) is served by converting at the API server with `v1_to_v2` /
`v2_to_v1`, which carry v1's `targetCPUUtilizationPercentage` and keep every v2-only field in the
`autoscaling.alpha.kubernetes.io/*` annotations as kube-apiserver does, so a v1 round trip loses
nothing.

"""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

from nbkube.api.meta import Obj

__all__ = [
    "DEFAULT_CPU_UTILIZATION",
    "behavior_with_defaults",
    "default_hpa",
    "hpa_row",
    "v1_to_v2",
    "v2_to_v1",
]

DEFAULT_CPU_UTILIZATION = 80
_METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
_BEHAVIOR_ANNOTATION = "autoscaling.alpha.kubernetes.io/behavior"
_CONDITIONS_ANNOTATION = "autoscaling.alpha.kubernetes.io/conditions"
_CURRENT_ANNOTATION = "autoscaling.alpha.kubernetes.io/current-metrics"


def _cpu_metric(utilization: int) -> Obj:
    return {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": utilization}},
    }


def behavior_with_defaults(behavior: dict[str, Any] | None) -> dict[str, Any] | None:
    """`spec.behavior` with upstream's defaults (None stays None: the controller's behaviour-less path).

    scaleUp: no window, +4 pods or +100% per 15 s, Max; scaleDown: +-100% per 15 s, Max, and no window
    written (the controller's default of 300 s applies, as upstream leaves it unset too)."""
    if behavior is None:
        return None
    up = copy.deepcopy(dict(behavior.get("scaleUp") or {}))
    down = copy.deepcopy(dict(behavior.get("scaleDown") or {}))
    if up.get("stabilizationWindowSeconds") is None:
        up["stabilizationWindowSeconds"] = 0
    if not up.get("selectPolicy"):
        up["selectPolicy"] = "Max"
    if not up.get("policies"):
        up["policies"] = [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15},
        ]
    if not down.get("selectPolicy"):
        down["selectPolicy"] = "Max"
    if not down.get("policies"):
        down["policies"] = [{"type": "Percent", "value": 100, "periodSeconds": 15}]
    return {"scaleUp": up, "scaleDown": down}


def default_hpa(obj: Obj) -> None:
    """As SetDefaults_HorizontalPodAutoscaler: minReplicas 1, CPU at 80% when no metric, behavior filled."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if not spec.get("metrics"):
        spec["metrics"] = [_cpu_metric(DEFAULT_CPU_UTILIZATION)]
    if isinstance(spec.get("behavior"), dict):
        spec["behavior"] = behavior_with_defaults(spec["behavior"])


# --- autoscaling/v1 <-> v2 --------------------------------------------------------------------------


def v1_to_v2(obj: Obj) -> Obj:
    """An autoscaling/v1 HPA as the v2 object nbkube stores (v2-only fields come back from annotations)."""
    out = copy.deepcopy(obj)
    out["apiVersion"] = "autoscaling/v2"
    meta = out.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    spec = dict(out.get("spec") or {})
    percent = spec.pop("targetCPUUtilizationPercentage", None)
    metrics: list[Obj] = []
    if _METRICS_ANNOTATION in annotations:
        try:
            metrics = [m for m in json.loads(annotations.pop(_METRICS_ANNOTATION)) if isinstance(m, dict)]
        except (ValueError, TypeError):
            metrics = []
    if percent is not None:
        metrics = [_cpu_metric(percent)] + [
            m for m in metrics if (m.get("resource") or {}).get("name") != "cpu"
        ]
    if metrics:
        spec["metrics"] = metrics
    if _BEHAVIOR_ANNOTATION in annotations:
        with contextlib.suppress(ValueError, TypeError):
            spec["behavior"] = json.loads(annotations.pop(_BEHAVIOR_ANNOTATION))
    out["spec"] = spec
    status = out.get("status")
    if isinstance(status, dict):
        status = dict(status)
        current = status.pop("currentCPUUtilizationPercentage", None)
        if current is not None:
            status["currentMetrics"] = [
                {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": current}}}
            ]
        if _CONDITIONS_ANNOTATION in annotations:
            with contextlib.suppress(ValueError, TypeError):
                status["conditions"] = json.loads(annotations.pop(_CONDITIONS_ANNOTATION))
        annotations.pop(_CURRENT_ANNOTATION, None)
        out["status"] = status
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return out


def v2_to_v1(obj: Obj) -> Obj:
    """The stored v2 HPA as autoscaling/v1: CPU utilization in v1's fields, the rest in annotations."""
    out = copy.deepcopy(obj)
    out["apiVersion"] = "autoscaling/v1"
    meta = out.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    spec = dict(out.get("spec") or {})
    others: list[Obj] = []
    for m in spec.pop("metrics", None) or []:
        res = m.get("resource") or {}
        target = res.get("target") or {}
        if m.get("type") == "Resource" and res.get("name") == "cpu" and target.get("type") == "Utilization":
            spec["targetCPUUtilizationPercentage"] = target.get("averageUtilization")
        else:
            others.append(m)
    if others:
        annotations[_METRICS_ANNOTATION] = json.dumps(others, separators=(",", ":"))
    behavior = spec.pop("behavior", None)
    if behavior is not None:
        annotations[_BEHAVIOR_ANNOTATION] = json.dumps(behavior, separators=(",", ":"))
    out["spec"] = spec
    status = out.get("status")
    if isinstance(status, dict):
        status = dict(status)
        for m in status.pop("currentMetrics", None) or []:
            res = m.get("resource") or {}
            if m.get("type") == "Resource" and res.get("name") == "cpu":
                util = (res.get("current") or {}).get("averageUtilization")
                if util is not None:
                    status["currentCPUUtilizationPercentage"] = util
        conditions = status.pop("conditions", None)
        if conditions:
            annotations[_CONDITIONS_ANNOTATION] = json.dumps(conditions, separators=(",", ":"))
        out["status"] = status
    if annotations:
        meta["annotations"] = annotations
    return out


# --- printer ----------------------------------------------------------------------------------------


def _targets(obj: Obj) -> str:
    spec = obj.get("spec") or {}
    current: dict[str, Obj] = {}
    for m in (obj.get("status") or {}).get("currentMetrics") or []:
        res = m.get("resource") or {}
        if m.get("type") == "Resource" and res.get("name"):
            current[str(res["name"])] = res.get("current") or {}
    parts = []
    metrics = spec.get("metrics") or []
    for m in metrics[:4]:
        res = m.get("resource") or {}
        target = res.get("target") or {}
        name = str(res.get("name") or "")
        now = current.get(name)
        if target.get("type") == "AverageValue":
            shown = str(now["averageValue"]) if now and now.get("averageValue") is not None else "<unknown>"
            parts.append(f"{name}: {shown}/{target.get('averageValue')}")
        else:
            value = now.get("averageUtilization") if now else None
            shown = f"{value}%" if value is not None else "<unknown>"
            parts.append(f"{name}: {shown}/{target.get('averageUtilization')}%")
    if len(metrics) > 4:
        parts.append(f"+ {len(metrics) - 4} more...")
    return ", ".join(parts) if parts else "<none>"


def hpa_row(obj: Obj, age: str) -> list[str]:
    """REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE, as kubectl prints an HPA."""
    spec = obj.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    status = obj.get("status") or {}
    low = spec.get("minReplicas")
    return [
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        _targets(obj),
        str(low) if low is not None else "<unset>",
        str(spec.get("maxReplicas", "")),
        str(status.get("currentReplicas", 0)),
        age,
    ]
