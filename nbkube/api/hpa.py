"""HorizontalPodAutoscaler (`autoscaling/v2`): defaults, validation, the v1 conversion and the printer row.

Why one module: every piece of the kind that the api layer owns, so the shared tables
(`defaults.py`, `validation.py`, `printers.py`) each gain one line. nbkube stores v2; `autoscaling/v1`
(what `kubectl autoscale` sends) is served by converting at the API server with `v1_to_v2` /
`v2_to_v1`, which carry v1's `targetCPUUtilizationPercentage` and keep every v2-only field in the
`autoscaling.alpha.kubernetes.io/*` annotations as kube-apiserver does, so a v1 round trip loses
nothing.

The controller (`controlplane/controllers/hpa.py`) acts on Resource metrics of `cpu` and `memory`;
other metric types (Pods, Object, External, ContainerResource) need an adapter nbkube does not have
and are refused with a field error saying so, rather than accepted and ignored.
"""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

from nbkube.api.fieldcheck import Errors, join
from nbkube.api.meta import Obj
from nbkube.api.quantity import parse_cpu, parse_memory

__all__ = [
    "DEFAULT_CPU_UTILIZATION",
    "behavior_with_defaults",
    "default_hpa",
    "hpa_row",
    "v1_to_v2",
    "v2_to_v1",
    "validate_hpa",
]

DEFAULT_CPU_UTILIZATION = 80
MAX_STABILIZATION_WINDOW = 3600
MAX_PERIOD_SECONDS = 1800
_METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
_BEHAVIOR_ANNOTATION = "autoscaling.alpha.kubernetes.io/behavior"
_CONDITIONS_ANNOTATION = "autoscaling.alpha.kubernetes.io/conditions"
_CURRENT_ANNOTATION = "autoscaling.alpha.kubernetes.io/current-metrics"
_RESOURCES = ("cpu", "memory")


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


# --- validation -------------------------------------------------------------------------------------


def _check_target(e: Errors, target: dict[str, Any], path: str, resource: str) -> None:
    kind = e.string(target, "type", path, required=True)
    if kind is None:
        return
    if kind == "Utilization":
        e.int32(target, "averageUtilization", path, required=True, minimum=1)
    elif kind == "AverageValue":
        raw = target.get("averageValue")
        if raw is None:
            e.required(join(path, "averageValue"))
            return
        try:
            value = parse_cpu(raw) if resource == "cpu" else parse_memory(raw)
        except Exception as exc:  # the quantity parser's message names what is wrong
            e.invalid(join(path, "averageValue"), raw, str(exc))
            return
        if value <= 0:
            e.invalid(join(path, "averageValue"), raw, "must be positive")
    else:
        e.unsupported(join(path, "type"), kind, ["Utilization", "AverageValue"])


def _check_rules(e: Errors, rules: dict[str, Any], path: str) -> None:
    e.int32(rules, "stabilizationWindowSeconds", path, minimum=0, maximum=MAX_STABILIZATION_WINDOW)
    select = e.string(rules, "selectPolicy", path)
    if select is not None and select not in ("Max", "Min", "Disabled"):
        e.unsupported(join(path, "selectPolicy"), select, ["Max", "Min", "Disabled"])
    policies = e.sequence(rules, "policies", path)
    for i, policy in enumerate(policies or []):
        pp = join(join(path, "policies"), i)
        if not isinstance(policy, dict):
            e.wrong_type(pp, "a mapping", policy)
            continue
        kind = e.string(policy, "type", pp, required=True)
        if kind is not None and kind not in ("Pods", "Percent"):
            e.unsupported(join(pp, "type"), kind, ["Pods", "Percent"])
        e.int32(policy, "value", pp, required=True, minimum=1)
        e.int32(policy, "periodSeconds", pp, required=True, minimum=1, maximum=MAX_PERIOD_SECONDS)


def validate_hpa(e: Errors, obj: dict[str, Any]) -> None:
    spec = e.mapping(obj, "spec", "", required=True)
    if spec is None:
        return
    ref = e.mapping(spec, "scaleTargetRef", "spec", required=True)
    if ref is not None:
        e.string(ref, "kind", "spec.scaleTargetRef", required=True, allow_empty=False)
        name = e.string(ref, "name", "spec.scaleTargetRef", required=True, allow_empty=False)
        if name is not None and ("/" in name or name in (".", "..")):
            e.invalid("spec.scaleTargetRef.name", name, "may not contain '/' or be '.' or '..'")
    low = e.int32(spec, "minReplicas", "spec", minimum=1)
    high = e.int32(spec, "maxReplicas", "spec", required=True, minimum=1)
    if low is not None and high is not None and high < low:
        e.invalid("spec.maxReplicas", high, "must be greater than or equal to `minReplicas`")
    for i, metric in enumerate(e.sequence(spec, "metrics", "spec") or []):
        path = f"spec.metrics[{i}]"
        if not isinstance(metric, dict):
            e.wrong_type(path, "a mapping", metric)
            continue
        kind = e.string(metric, "type", path, required=True)
        if kind is None:
            continue
        if kind != "Resource":
            e.unsupported(join(path, "type"), kind, ["Resource"])
            e.add(join(path, "type"), "nbkube's autoscaler reads resource metrics (metrics.k8s.io) only")
            continue
        res = e.mapping(metric, "resource", path, required=True)
        if res is None:
            continue
        name = e.string(res, "name", join(path, "resource"), required=True)
        if name is not None and name not in _RESOURCES:
            e.unsupported(join(path, "resource.name"), name, _RESOURCES)
            continue
        target = e.mapping(res, "target", join(path, "resource"), required=True)
        if target is not None and name is not None:
            _check_target(e, target, join(path, "resource.target"), name)
    behavior = e.mapping(spec, "behavior", "spec")
    if behavior is not None:
        for key in ("scaleUp", "scaleDown"):
            rules = e.mapping(behavior, key, "spec.behavior")
            if rules is not None:
                _check_rules(e, rules, f"spec.behavior.{key}")


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
