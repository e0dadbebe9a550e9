"""Validation of StatefulSets (apps/v1).

Beyond the selector-matches-template rule every pod controller has: the pods a StatefulSet makes
are named `NAME-ORDINAL` and use that name as their hostname, so the name must be a DNS label; its
volumeClaimTemplates are claims (validated as such) whose names the template's volumeMounts may
use; and only what nbkube's controller honours is accepted (no `maxUnavailable`, an alpha field
upstream, which the controller does not implement).
"""

from __future__ import annotations

from typing import Any

from nbkube.api import naming
from nbkube.api.fieldcheck import Errors, join
from nbkube.api.selectors import label_selector_errors, selector_from_label_selector
from nbkube.api.validate_common import check_name, check_template_meta
from nbkube.api.validate_pod import check_pod_spec
from nbkube.api.validate_storage import check_claim_spec

__all__ = [
    "validate_controller_revision",
    "validate_controller_revision_update",
    "validate_stateful_set",
    "validate_stateful_set_update",
]

MISMATCH = "`selector` does not match template `labels`"
POLICIES = ("OrderedReady", "Parallel")
STRATEGIES = ("RollingUpdate", "OnDelete")
_STATUS_COUNTS = (
    "replicas",
    "readyReplicas",
    "currentReplicas",
    "updatedReplicas",
    "availableReplicas",
    "collisionCount",
)


def _claim_templates(e: Errors, spec: dict[str, Any]) -> frozenset[str]:
    names: set[str] = set()
    for cp, claim in e.maps(spec, "volumeClaimTemplates", "spec"):
        meta = e.mapping(claim, "metadata", cp, required=True)
        name = e.string(meta, "name", join(cp, "metadata"), required=True) if meta is not None else None
        if name and check_name(e, join(cp, "metadata.name"), name, naming.check_dns1123_label):
            if name in names:
                e.duplicate(join(cp, "metadata.name"), name)
            names.add(name)
        cspec = e.mapping(claim, "spec", cp, required=True)
        if cspec is not None:
            check_claim_spec(e, cspec, join(cp, "spec"))
    return frozenset(names)


def validate_stateful_set(e: Errors, obj: dict[str, Any]) -> None:
    status = obj.get("status")
    if isinstance(status, dict):
        for key in _STATUS_COUNTS:
            e.int32(status, key, "status", minimum=0)
        e.integer(status, "observedGeneration", "status", minimum=0)
    spec = e.mapping(obj, "spec", "", required=True)
    if spec is None:
        return
    e.int32(spec, "replicas", "spec", minimum=0)
    e.int32(spec, "minReadySeconds", "spec", minimum=0)
    e.int32(spec, "revisionHistoryLimit", "spec", minimum=0)
    service = e.string(spec, "serviceName", "spec")
    if service:
        check_name(e, "spec.serviceName", service, naming.check_dns1035_label)
    e.one_of(spec, "podManagementPolicy", "spec", POLICIES)
    ordinals = e.mapping(spec, "ordinals", "spec")
    if ordinals is not None:
        e.int32(ordinals, "start", "spec.ordinals", minimum=0)
    _update_strategy(e, spec)
    _retention(e, spec)
    claims = _claim_templates(e, spec)
    raw = spec.get("selector")
    if raw is None:
        e.required("spec.selector")
    else:
        e.extend(label_selector_errors(raw, "spec.selector"))
    template = e.mapping(spec, "template", "spec", required=True)
    if template is None:
        return
    labels = check_template_meta(e, template, "spec.template")
    pod_spec = e.mapping(template, "spec", "spec.template", required=True)
    if pod_spec is not None:
        check_pod_spec(e, pod_spec, "spec.template.spec", template=True, claims=claims)
    if raw is not None and not any(err.path.startswith("spec.selector") for err in e):
        selector = selector_from_label_selector(raw)
        if selector.empty():
            e.invalid("spec.selector", raw, "empty selector is invalid for statefulset")
        elif not selector.matches(labels):
            e.invalid("spec.template.metadata.labels", labels, MISMATCH)


def _update_strategy(e: Errors, spec: dict[str, Any]) -> None:
    strategy = e.mapping(spec, "updateStrategy", "spec")
    if strategy is None:
        return
    path = "spec.updateStrategy"
    stype = e.one_of(strategy, "type", path, STRATEGIES)
    rolling = e.mapping(strategy, "rollingUpdate", path)
    if rolling is None:
        return
    rp = join(path, "rollingUpdate")
    if stype == "OnDelete":
        e.forbidden(rp, "only allowed for updateStrategy 'RollingUpdate'")
        return
    e.int32(rolling, "partition", rp, minimum=0)
    if rolling.get("maxUnavailable") is not None:
        e.forbidden(
            join(rp, "maxUnavailable"),
            "not implemented by nbkube's StatefulSet controller "
            "(an alpha field upstream): pods are updated one at a time",
        )


def _retention(e: Errors, spec: dict[str, Any]) -> None:
    policy = e.mapping(spec, "persistentVolumeClaimRetentionPolicy", "spec")
    if policy is None:
        return
    path = "spec.persistentVolumeClaimRetentionPolicy"
    for key in ("whenDeleted", "whenScaled"):
        e.one_of(policy, key, path, ("Retain", "Delete"))


_MUTABLE = frozenset(
    {
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
        "revisionHistoryLimit",
    }
)


def validate_stateful_set_update(e: Errors, new: dict[str, Any], old: dict[str, Any]) -> None:
    """Upstream's rule: only replicas, ordinals, template, updateStrategy, the retention policy,
    minReadySeconds and revisionHistoryLimit may change."""
    new_spec = _mapping(new.get("spec"))
    old_spec = _mapping(old.get("spec"))
    for key in sorted((set(new_spec) | set(old_spec)) - _MUTABLE):
        if new_spec.get(key) != old_spec.get(key):
            e.forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                "'minReadySeconds' are forbidden",
            )
            return


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def validate_controller_revision(e: Errors, obj: dict[str, Any]) -> None:
    """A ControllerRevision (StatefulSet and DaemonSet history): data is mandatory, as upstream."""
    if obj.get("data") is None:
        e.add("data", "Required value: data is mandatory")
    else:
        e.mapping(obj, "data", "")
    e.integer(obj, "revision", "", minimum=0)


def validate_controller_revision_update(e: Errors, new: dict[str, Any], old: dict[str, Any]) -> None:
    if new.get("data") != old.get("data"):
        e.forbidden("data", "field is immutable")
