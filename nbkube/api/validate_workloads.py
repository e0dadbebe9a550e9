"""Validation of the pod controllers: ReplicationController, ReplicaSet and Deployment.

The rule that matters most: the selector must select the pods the template makes, or the
controller would create pods forever. Kubernetes rejects such objects with
"`selector` does not match template `labels`", and so do we.
"""

from __future__ import annotations

from typing import Any

from nbkube.api.fieldcheck import INT32_MAX, Errors, is_int, join
from nbkube.api.intstr import is_percent, percent_of
from nbkube.api.selectors import label_selector_errors, selector_from_label_selector
from nbkube.api.validate_common import check_labels, check_template_meta
from nbkube.api.validate_pod import check_pod_spec

MISMATCH = "`selector` does not match template `labels`"


def _check_template(
    e: Errors, spec: dict[str, Any], path: str
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    template = e.mapping(spec, "template", path, required=True)
    if template is None:
        return None, {}
    tp = join(path, "template")
    labels = check_template_meta(e, template, tp)
    pod_spec = e.mapping(template, "spec", tp, required=True)
    if pod_spec is not None:
        check_pod_spec(e, pod_spec, join(tp, "spec"), template=True)
    return template, labels


_STATUS_COUNTS = (
    "replicas",
    "fullyLabeledReplicas",
    "readyReplicas",
    "availableReplicas",
    "updatedReplicas",
    "unavailableReplicas",
    "terminatingReplicas",
    "collisionCount",
)


def _check_status(e: Errors, obj: dict[str, Any]) -> None:
    """The counts a controller writes (int32, never negative) and observedGeneration (int64)."""
    status = obj.get("status")
    if not isinstance(status, dict) or not status:
        return  # a mistyped status is reported by `validation.validate`
    for key in _STATUS_COUNTS:
        e.int32(status, key, "status", minimum=0)
    e.integer(status, "observedGeneration", "status", minimum=0)


def validate_replication_controller(e: Errors, obj: dict[str, Any]) -> None:
    _check_status(e, obj)
    spec = e.mapping(obj, "spec", "", required=True)
    if spec is None:
        return
    e.int32(spec, "replicas", "spec", minimum=0)
    e.int32(spec, "minReadySeconds", "spec", minimum=0)
    before = len(e)
    selector = check_labels(e, spec, "selector", "spec")
    selector_ok = len(e) == before
    template, labels = _check_template(e, spec, "spec")
    if selector_ok and not selector:
        e.required("spec.selector")
    elif selector_ok and template is not None and any(labels.get(k) != v for k, v in selector.items()):
        e.invalid("spec.template.metadata.labels", labels, MISMATCH)


def _check_selector_matches(e: Errors, spec: dict[str, Any], kind: str) -> None:
    raw = spec.get("selector")
    if raw is None:
        e.required("spec.selector")
        _check_template(e, spec, "spec")
        return
    before = len(e)
    e.extend(label_selector_errors(raw, "spec.selector"))
    template, labels = _check_template(e, spec, "spec")
    if any(err.path.startswith("spec.selector") for err in e[before:]):
        return
    selector = selector_from_label_selector(raw)
    if selector.empty():
        e.invalid("spec.selector", raw, f"empty selector is invalid for {kind}")
    elif template is not None and not selector.matches(labels):
        e.invalid("spec.template.metadata.labels", labels, MISMATCH)


def validate_replica_set(e: Errors, obj: dict[str, Any]) -> None:
    _check_status(e, obj)
    spec = e.mapping(obj, "spec", "", required=True)
    if spec is None:
        return
    e.int32(spec, "replicas", "spec", minimum=0)
    e.int32(spec, "minReadySeconds", "spec", minimum=0)
    _check_selector_matches(e, spec, "replicaset")


def validate_deployment(e: Errors, obj: dict[str, Any]) -> None:
    _check_status(e, obj)
    spec = e.mapping(obj, "spec", "", required=True)
    if spec is None:
        return
    e.int32(spec, "replicas", "spec", minimum=0)
    min_ready = e.int32(spec, "minReadySeconds", "spec", minimum=0)
    e.int32(spec, "revisionHistoryLimit", "spec", minimum=0)
    deadline = e.int32(spec, "progressDeadlineSeconds", "spec", minimum=1)
    if deadline is not None and min_ready is not None and deadline <= min_ready:
        e.invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds")
    e.boolean(spec, "paused", "spec")
    _check_selector_matches(e, spec, "deployment")
    strategy = e.mapping(spec, "strategy", "spec")
    if strategy is not None:
        _check_strategy(e, strategy, "spec.strategy")


def _int_or_percent(e: Errors, parent: dict[str, Any], key: str, path: str) -> int | None:
    """The value as a number (percent or count) to test for zero; None when absent or invalid."""
    value = parent.get(key)
    full = join(path, key)
    if value is None:
        return None
    if is_int(value):
        if value < 0:
            e.invalid(full, value, "must be greater than or equal to 0")
            return None
        if value > INT32_MAX:  # an IntOrString holds an int32
            e.invalid(full, value, f"must be less than or equal to {INT32_MAX}")
            return None
        return int(value)
    if isinstance(value, str) and is_percent(value):
        return percent_of(value)
    e.invalid(full, value, "must be an integer or percentage (e.g. '5%')")
    return None


def _check_strategy(e: Errors, strategy: dict[str, Any], path: str) -> None:
    stype = e.one_of(strategy, "type", path, ("Recreate", "RollingUpdate"))
    rolling = e.mapping(strategy, "rollingUpdate", path)
    if rolling is None:
        return
    rp = join(path, "rollingUpdate")
    if stype == "Recreate":
        e.forbidden(rp, "may not be specified when strategy `type` is 'Recreate'")
        return
    surge = _int_or_percent(e, rolling, "maxSurge", rp)
    unavailable = _int_or_percent(e, rolling, "maxUnavailable", rp)
    if isinstance(rolling.get("maxUnavailable"), str) and unavailable is not None and unavailable > 100:
        e.invalid(join(rp, "maxUnavailable"), rolling["maxUnavailable"], "must not be greater than 100%")
    if surge == 0 and unavailable == 0:
        e.invalid(join(rp, "maxUnavailable"), rolling["maxUnavailable"], "may not be 0 when `maxSurge` is 0")


__all__ = ["validate_replication_controller", "validate_replica_set", "validate_deployment"]
