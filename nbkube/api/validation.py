"""Validation of objects as Kubernetes validates them: the registry's gate before any write.

`validate(obj)` checks one object (structure, types, names, labels and the per-kind rules) and
returns every problem found as a FieldError with its dotted path, so that a manifest with three
mistakes gets three messages at once. `validate_update(new, old)` adds the rules about what an update
may not change. Callers: `serialization.load_manifests` (manifests), the registry (create/update),
and anything else that builds objects by hand and wants to check them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nbkube.api import kinds, naming
from nbkube.api.defaults import default_service_account
from nbkube.api.discovery import validate_endpoint_slice
from nbkube.api.fieldcheck import INT64_MAX, INT64_MIN, Errors, ints_fit_int64, is_int, join, show
from nbkube.api.validate_batch import validate_cron_job, validate_job, validate_job_update
from nbkube.api.validate_common import check_object_meta
from nbkube.api.validate_daemonset_pdb import (
    validate_daemon_set,
    validate_pod_disruption_budget,
)
from nbkube.api.validate_hpa import validate_hpa
from nbkube.api.validate_network import validate_endpoints, validate_network_policy, validate_service
from nbkube.api.validate_other import (
    check_event_name,
    validate_config_map,
    validate_event,
    validate_lease,
    validate_limit_range,
    validate_namespace,
    validate_node,
    validate_resource_quota,
    validate_secret,
    validate_service_account,
)
from nbkube.api.validate_pod import check_pod_spec
from nbkube.api.validate_rbac import (
    validate_binding_update,
    validate_cluster_role,
    validate_cluster_role_binding,
    validate_role,
    validate_role_binding,
)
from nbkube.api.validate_statefulset import (
    validate_controller_revision,
    validate_controller_revision_update,
    validate_stateful_set,
    validate_stateful_set_update,
)
from nbkube.api.validate_storage import (
    validate_persistent_volume,
    validate_persistent_volume_claim,
    validate_storage_class,
    validate_storage_update,
)
from nbkube.api.validate_workloads import (
    validate_deployment,
    validate_replica_set,
    validate_replication_controller,
)
from nbkube.errors import BadRequest, FieldError

__all__ = ["validate", "validate_update", "name_check_for", "int64_errors"]

KindValidator = Callable[[Errors, dict[str, Any]], None]


def _validate_pod(e: Errors, obj: dict[str, Any]) -> None:
    spec = e.mapping(obj, "spec", "", required=True)
    if spec is not None:
        check_pod_spec(e, spec, "spec")


_VALIDATORS: dict[str, KindValidator] = {
    "Pod": _validate_pod,
    "ReplicationController": validate_replication_controller,
    "ReplicaSet": validate_replica_set,
    "Deployment": validate_deployment,
    "DaemonSet": validate_daemon_set,
    "PodDisruptionBudget": validate_pod_disruption_budget,
    "Job": validate_job,
    "CronJob": validate_cron_job,
    "HorizontalPodAutoscaler": validate_hpa,
    "Service": validate_service,
    "Endpoints": validate_endpoints,
    "NetworkPolicy": validate_network_policy,
    "Namespace": validate_namespace,
    "Node": validate_node,
    "ConfigMap": validate_config_map,
    "Secret": validate_secret,
    "ServiceAccount": validate_service_account,
    "ResourceQuota": validate_resource_quota,
    "LimitRange": validate_limit_range,
    "Event": validate_event,
    "Lease": validate_lease,
    "EndpointSlice": validate_endpoint_slice,
    "Role": validate_role,
    "ClusterRole": validate_cluster_role,
    "RoleBinding": validate_role_binding,
    "ClusterRoleBinding": validate_cluster_role_binding,
    "StatefulSet": validate_stateful_set,
    "ControllerRevision": validate_controller_revision,
    "PersistentVolume": validate_persistent_volume,
    "PersistentVolumeClaim": validate_persistent_volume_claim,
    "StorageClass": validate_storage_class,
}

# Names that end up as DNS labels (namespaces; services, whose names become DNS names and env vars)
_NAME_CHECKS: dict[str, Callable[[str], list[str]]] = {
    "Namespace": naming.check_dns1123_label,
    "Service": naming.check_dns1035_label,
    "Event": check_event_name,
    # RBAC names only have to be path segments: `system:node:web-1`, `system:masters`
    "Role": naming.check_path_segment,
    "ClusterRole": naming.check_path_segment,
    "RoleBinding": naming.check_path_segment,
    "ClusterRoleBinding": naming.check_path_segment,
    "StatefulSet": naming.check_dns1123_label,  # its pods' hostnames are NAME-ORDINAL
}


def name_check_for(kind: str) -> Callable[[str], list[str]]:
    """The rule metadata.name must follow for `kind` (DNS-1123 subdomain unless listed above)."""
    return _NAME_CHECKS.get(kind, naming.check_dns1123_subdomain)


def validate(obj: Any) -> list[FieldError]:
    """Every problem with `obj`, each naming its field path; [] when the object is valid."""
    e = Errors()
    if not isinstance(obj, dict):
        e.wrong_type("", "a mapping (an object with apiVersion, kind and metadata)", obj)
        return list(e)
    api_version = e.string(obj, "apiVersion", "", required=True)
    kind = e.string(obj, "kind", "", required=True)
    if api_version is None or kind is None:
        return list(e)
    try:
        info = kinds.for_manifest(api_version, kind)
    except BadRequest as exc:
        e.add("kind" if kinds_known(kind) is None else "apiVersion", str(exc))
        return list(e)
    check_object_meta(e, obj, name_check_for(info.kind), info.namespaced)
    _VALIDATORS[info.kind](e, obj)
    if info.has_status:
        e.mapping(obj, "status", "")
    if not e:
        e.extend(int64_errors(obj))
    return list(e)


def int64_errors(value: Any, path: str = "") -> list[FieldError]:
    """Integers beyond int64 under `path`: a quick walk first (almost every object passes), then
    the one that names each field."""
    if ints_fit_int64(value):
        return []
    e = Errors()
    _check_int64(e, value, path)
    return list(e)


def _check_int64(e: Errors, value: Any, path: str) -> None:
    """No integer anywhere beyond int64, the widest integer Kubernetes has.

    The per-kind validators range-check the fields they know; this covers the open shapes
    (securityContext, affinity, volume sources...), whose integers would otherwise reach the store,
    whose JSON reader cannot give such a number back as an integer.
    """
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, dict | list) or is_int(v):
                _check_int64(e, v, join(path, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, dict | list) or is_int(v):
                _check_int64(e, v, join(path, i))
    elif is_int(value) and not INT64_MIN <= value <= INT64_MAX:
        e.invalid(path, value, f"must be a 64-bit integer (between {INT64_MIN} and {INT64_MAX})")


def kinds_known(kind: str) -> kinds.KindInfo | None:
    try:
        info = kinds.lookup(kind)
    except BadRequest:
        return None
    return info if info.kind == kind else None


# --- updates -----------------------------------------------------------------------------------

_IMMUTABLE = "field is immutable"


def validate_update(new: Any, old: Any) -> list[FieldError]:
    """What `new` may not change relative to the stored `old` (call `validate(new)` as well).

    Server-set fields the client may omit (Service clusterIP, a pod's nodeName) should be copied
    from `old` first with `defaults.preserve_allocated`, as Kubernetes does before it validates.
    """
    e = Errors()
    if not isinstance(new, dict) or not isinstance(old, dict):
        return list(e)
    for key in ("apiVersion", "kind"):
        if new.get(key) != old.get(key):
            e.invalid(key, new.get(key), _IMMUTABLE)
    new_meta, old_meta = new.get("metadata") or {}, old.get("metadata") or {}
    if isinstance(new_meta, dict) and isinstance(old_meta, dict):
        for key in ("name", "namespace"):
            if (new_meta.get(key) or "") != (old_meta.get(key) or ""):
                e.invalid(f"metadata.{key}", new_meta.get(key), _IMMUTABLE)
    if e:
        return list(e)
    new_spec, old_spec = _mapping(new.get("spec")), _mapping(old.get("spec"))
    kind = new.get("kind")
    if kind in ("ReplicaSet", "Deployment", "DaemonSet") and new_spec.get("selector") != old_spec.get("selector"):
        e.invalid("spec.selector", new_spec.get("selector"), _IMMUTABLE)
    elif kind == "Job":
        validate_job_update(e, new_spec, old_spec)
    elif kind == "Service":
        _service_update(e, new_spec, old_spec)
    elif kind == "Pod":
        _pod_update(e, new_spec, old_spec)
    elif kind == "Node" and old_spec.get("podCIDR") and new_spec.get("podCIDR") != old_spec.get("podCIDR"):
        e.invalid("spec.podCIDR", new_spec.get("podCIDR"), "may not be changed once set")
    elif kind in ("RoleBinding", "ClusterRoleBinding"):
        validate_binding_update(e, new, old)
    elif kind == "StatefulSet":
        validate_stateful_set_update(e, new, old)
    elif kind == "ControllerRevision":
        validate_controller_revision_update(e, new, old)
    elif kind in ("StorageClass", "PersistentVolumeClaim", "PersistentVolume"):
        validate_storage_update(e, new, old)
    elif kind in ("ConfigMap", "Secret") and old.get("immutable") is True:
        if new.get("immutable") is not True:
            e.forbidden("immutable", "may not be unset once set to true")
        for key in ("data", "binaryData", "stringData"):
            if (new.get(key) or {}) != (old.get(key) or {}):
                e.forbidden(key, "field is immutable when `immutable` is set")
    return list(e)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _service_update(e: Errors, new: dict[str, Any], old: dict[str, Any]) -> None:
    old_ip = old.get("clusterIP") or ""
    if old_ip and new.get("clusterIP") != old_ip and old.get("type") != "ExternalName":
        e.invalid("spec.clusterIP", new.get("clusterIP") or "", f"{_IMMUTABLE} (was {old_ip})")


_POD_UPDATE_MSG = (
    "pod updates may not change fields other than `spec.containers[*].image`, "
    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` "
    "(only additions to existing tolerations) and setting `spec.nodeName` once"
)


def _pod_update(e: Errors, new: dict[str, Any], old: dict[str, Any]) -> None:
    # shallow copies: what this check changes is top-level keys and the containers' images, and
    # those are copied as they are changed (a deep copy of both specs was most of a bind's cost)
    a, b = dict(new), dict(old)
    # a pod stored before its ServiceAccount was defaulted reads as running as `default`
    default_service_account(b)
    for key in ("containers", "initContainers"):
        new_c, old_c = a.get(key), b.get(key)
        if isinstance(new_c, list) and isinstance(old_c, list) and len(new_c) == len(old_c):
            a[key] = [
                {**nc, "image": oc["image"]}
                if isinstance(nc, dict) and isinstance(oc, dict) and "image" in oc
                else nc
                for nc, oc in zip(new_c, old_c, strict=True)
            ]
    old_deadline, new_deadline = b.pop("activeDeadlineSeconds", None), a.pop("activeDeadlineSeconds", None)
    if is_int(old_deadline) and (not is_int(new_deadline) or new_deadline > old_deadline):
        e.invalid(
            "spec.activeDeadlineSeconds", new_deadline, "must be less than or equal to the previous value"
        )
    old_tol, new_tol = b.pop("tolerations", None) or [], a.pop("tolerations", None) or []
    if isinstance(new_tol, list) and isinstance(old_tol, list):
        missing = [t for t in old_tol if t not in new_tol]
        if missing:
            e.forbidden(
                "spec.tolerations", f"existing toleration {show(missing[0])} may not be removed or changed"
            )
    old_node, new_node = b.pop("nodeName", None) or "", a.pop("nodeName", None) or ""
    if old_node and new_node != old_node:
        e.invalid("spec.nodeName", new_node, f"may not be changed once set (bound to {old_node})")
    if a != b:
        changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        e.forbidden("spec", f"{_POD_UPDATE_MSG}; changed: {', '.join(join('spec', k) for k in changed)}")
