"""Validation of HorizontalPodAutoscalers, as upstream's ValidateHorizontalPodAutoscaler.

The controller (`controlplane/controllers/hpa.py`) acts on Resource metrics of `cpu` and `memory`;
other metric types (Pods, Object, External, ContainerResource) need a metrics adapter nbkube does
not have, so they are refused with a field error saying so rather than accepted and ignored.
"""

from __future__ import annotations

from typing import Any

from nbkube.api.fieldcheck import Errors, join
from nbkube.api.quantity import QuantityError, parse_cpu, parse_memory

__all__ = ["validate_hpa"]

MAX_STABILIZATION_WINDOW = 3600
MAX_PERIOD_SECONDS = 1800
_RESOURCES = ("cpu", "memory")


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
        except QuantityError as exc:  # its message names what is wrong
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
