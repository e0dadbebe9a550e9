"""Validation of DaemonSets (apps/v1) and PodDisruptionBudgets (policy/v1), with upstream's rules.

A DaemonSet is a pod controller like a ReplicaSet (its selector must select its template's pods),
with two rules of its own: its pods restart forever (`restartPolicy: Always`, a finished daemon pod
would leave its node without one) and its update strategy is RollingUpdate or OnDelete. A
PodDisruptionBudget names either `minAvailable` or `maxUnavailable`, never both, as a count or a
percentage; its selector may be empty (then it covers every pod of its namespace). The
DaemonSet's history (ControllerRevision) is validated with the StatefulSet's, in validate_statefulset.py.
"""

from __future__ import annotations

from typing import Any

from nbkube.api.fieldcheck import Errors, join
from nbkube.api.selectors import label_selector_errors
from nbkube.api.validate_workloads import _check_selector_matches, _int_or_percent

__all__ = ["validate_daemon_set", "validate_pod_disruption_budget"]

_DS_COUNTS = (
    "currentNumberScheduled",
    "numberMisscheduled",
    "desiredNumberScheduled",
    "numberReady",
    "updatedNumberScheduled",
    "numberAvailable",
    "numberUnavailable",
    "collisionCount",
)
_PDB_COUNTS = ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods")


def _check_counts(e: Errors, obj: dict[str, Any], keys: tuple[str, ...]) -> None:
    status = obj.get("status")
    if not isinstance(status, dict) or not status:
        return  # a mistyped status is reported by `validation.validate`
    for key in keys:
        e.int32(status, key, "status", minimum=0)
    e.integer(status, "observedGeneration", "status", minimum=0)


def _check_percent_at_most_100(e: Errors, parent: dict[str, Any], key: str, path: str) -> int | None:
    value = _int_or_percent(e, parent, key, path)
    if isinstance(parent.get(key), str) and value is not None and value > 100:
        e.invalid(join(path, key), parent[key], "must not be greater than 100%")
        return None
    return value


def validate_daemon_set(e: Errors, obj: dict[str, Any]) -> None:
    _check_counts(e, obj, _DS_COUNTS)
    spec = e.mapping(obj, "spec", "", required=True)
    if spec is None:
        return
    e.int32(spec, "minReadySeconds", "spec", minimum=0)
    e.int32(spec, "revisionHistoryLimit", "spec", minimum=0)
    _check_selector_matches(e, spec, "daemonset")
    template = spec.get("template")
    pod_spec = template.get("spec") if isinstance(template, dict) else None
    if isinstance(pod_spec, dict):
        policy = pod_spec.get("restartPolicy")
        if policy is not None and policy != "Always":
            e.unsupported("spec.template.spec.restartPolicy", policy, ["Always"])
        if pod_spec.get("activeDeadlineSeconds") is not None:
            e.forbidden("spec.template.spec.activeDeadlineSeconds", "activeDeadlineSeconds in DaemonSet is not Supported")
    strategy = e.mapping(spec, "updateStrategy", "spec")
    if strategy is None:
        return
    path = "spec.updateStrategy"
    stype = e.one_of(strategy, "type", path, ("OnDelete", "RollingUpdate"))
    rolling = e.mapping(strategy, "rollingUpdate", path)
    rp = join(path, "rollingUpdate")
    if stype == "RollingUpdate" and rolling is None and "rollingUpdate" not in strategy:
        e.required(rp)
    if rolling is None:
        return
    if stype == "OnDelete":
        e.forbidden(rp, "may not be specified when strategy `type` is 'OnDelete'")
        return
    surge = _check_percent_at_most_100(e, rolling, "maxSurge", rp)
    unavailable = _check_percent_at_most_100(e, rolling, "maxUnavailable", rp)
    if surge == 0 and unavailable == 0:
        e.add(join(rp, "maxUnavailable"), "Required value: cannot be 0 when maxSurge is 0")
    elif surge is not None and surge != 0 and unavailable is not None and unavailable != 0:
        e.invalid(join(rp, "maxSurge"), rolling.get("maxSurge"), "may not be set when maxUnavailable is non-zero")


def validate_pod_disruption_budget(e: Errors, obj: dict[str, Any]) -> None:
    _check_counts(e, obj, _PDB_COUNTS)
    spec = e.mapping(obj, "spec", "")
    if spec is None:
        return
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        e.invalid("spec", "", "minAvailable and maxUnavailable cannot be both set")
    for key in ("minAvailable", "maxUnavailable"):
        _check_percent_at_most_100(e, spec, key, "spec")
    e.extend(label_selector_errors(spec.get("selector"), "spec.selector"))
    if spec.get("unhealthyPodEvictionPolicy") is not None:
        e.one_of(spec, "unhealthyPodEvictionPolicy", "spec", ("IfHealthyBudget", "AlwaysAllow"))
