"""Validation of PersistentVolumes, PersistentVolumeClaims and StorageClasses.

What nbkube's nodes can honour decides part of it: a volume is a folder on a node (a `local` or
`hostPath` source), so `volumeMode: Block`, claim `dataSource`s and network volume sources are refused
with a field error instead of being accepted and never served.
"""

from __future__ import annotations

from typing import Any

from nbkube.api import naming
from nbkube.api.fieldcheck import Errors, join
from nbkube.api.selectors import label_selector_errors
from nbkube.api.validate_common import check_labels, check_name, quantity_of

__all__ = [
    "ACCESS_MODES",
    "check_claim_spec",
    "validate_persistent_volume",
    "validate_persistent_volume_claim",
    "validate_storage_class",
    "validate_storage_update",
]

ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
RECLAIM_POLICIES = ("Retain", "Delete")
BINDING_MODES = ("Immediate", "WaitForFirstConsumer")
# the volume sources a node of nbkube can give a pod as a folder
_SERVED_SOURCES = ("local", "hostPath")
_FOLDERS_ONLY = "nbkube's volumes are folders on a node (docker and process runtimes): only Filesystem"


def _access_modes(e: Errors, spec: dict[str, Any], path: str) -> None:
    modes = e.strings(spec, "accessModes", path)
    full = join(path, "accessModes")
    raw = spec.get("accessModes")
    if raw is None or raw == []:
        e.required(full)
    for i, mode in enumerate(modes):
        if mode not in ACCESS_MODES:
            e.unsupported(join(full, i), mode, ACCESS_MODES)
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        e.forbidden(full, "may not use ReadWriteOncePod with other access modes")


def _storage_size(e: Errors, parent: dict[str, Any] | None, path: str, key: str) -> None:
    full = join(path, key)
    amounts = parent if isinstance(parent, dict) else {}
    if "storage" not in amounts:
        e.required(f"{full}[storage]")
        return
    amount = quantity_of(e, f"{full}[storage]", amounts["storage"])
    if amount is not None and amount <= 0:
        e.invalid(f"{full}[storage]", amounts["storage"], "must be greater than zero")
    for name in amounts:
        if name != "storage":
            e.unsupported(f"{full}[{name}]", name, ["storage"])


def _volume_mode(e: Errors, spec: dict[str, Any], path: str) -> None:
    mode = e.one_of(spec, "volumeMode", path, ("Filesystem", "Block"))
    if mode == "Block":
        e.invalid(join(path, "volumeMode"), mode, _FOLDERS_ONLY)


def check_claim_spec(e: Errors, spec: dict[str, Any], path: str) -> None:
    """A claim's spec, or a StatefulSet volumeClaimTemplate's."""
    _access_modes(e, spec, path)
    resources = e.mapping(spec, "resources", path, required=True)
    if resources is not None:
        rp = join(path, "resources")
        requests = e.mapping(resources, "requests", rp, required=True)
        if requests is not None:
            _storage_size(e, requests, rp, "requests")
        limits = e.mapping(resources, "limits", rp)
        if limits:
            _storage_size(e, limits, rp, "limits")
    for key in ("storageClassName", "volumeName"):
        value = e.string(spec, key, path)
        if value:
            check_name(e, join(path, key), value, naming.check_dns1123_subdomain)
    _volume_mode(e, spec, path)
    if spec.get("selector") is not None:
        e.extend(label_selector_errors(spec["selector"], join(path, "selector")))
    for key in ("dataSource", "dataSourceRef"):
        if spec.get(key) is not None:
            e.forbidden(join(path, key), "populating a claim from a data source is not implemented by nbkube")
    e.string(spec, "volumeAttributesClassName", path)


def validate_persistent_volume_claim(e: Errors, obj: dict[str, Any]) -> None:
    spec = e.mapping(obj, "spec", "", required=True)
    if spec is not None:
        check_claim_spec(e, spec, "spec")


def _node_affinity(e: Errors, spec: dict[str, Any], path: str) -> bool:
    """spec.nodeAffinity.required.nodeSelectorTerms; True when there is at least one term."""
    affinity = e.mapping(spec, "nodeAffinity", path)
    if affinity is None:
        return False
    ap = join(path, "nodeAffinity")
    required = e.mapping(affinity, "required", ap, required=True)
    if required is None:
        return False
    rp = join(ap, "required")
    terms = e.maps(required, "nodeSelectorTerms", rp, required=True)
    for tp, term in terms:
        for xp, expr in e.maps(term, "matchExpressions", tp):
            e.string(expr, "key", xp, required=True)
            e.one_of(
                expr, "operator", xp, ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"), required=True
            )
            e.strings(expr, "values", xp)
    return bool(terms)


def validate_persistent_volume(e: Errors, obj: dict[str, Any]) -> None:
    spec = e.mapping(obj, "spec", "", required=True)
    if spec is None:
        return
    capacity = e.mapping(spec, "capacity", "spec", required=True)
    if capacity is not None:
        _storage_size(e, capacity, "spec", "capacity")
    _access_modes(e, spec, "spec")
    policy = e.one_of(spec, "persistentVolumeReclaimPolicy", "spec", (*RECLAIM_POLICIES, "Recycle"))
    if policy == "Recycle":
        e.invalid(
            "spec.persistentVolumeReclaimPolicy",
            policy,
            "Recycle is deprecated and not implemented by nbkube",
        )
    _volume_mode(e, spec, "spec")
    value = e.string(spec, "storageClassName", "spec")
    if value:
        check_name(e, "spec.storageClassName", value, naming.check_dns1123_subdomain)
    e.strings(spec, "mountOptions", "spec")
    claim_ref = e.mapping(spec, "claimRef", "spec")
    if claim_ref is not None:
        e.string(claim_ref, "name", "spec.claimRef", required=True)
        e.string(claim_ref, "namespace", "spec.claimRef")
    has_affinity = _node_affinity(e, spec, "spec")
    known = {
        "capacity",
        "accessModes",
        "persistentVolumeReclaimPolicy",
        "volumeMode",
        "storageClassName",
        "mountOptions",
        "claimRef",
        "nodeAffinity",
        "volumeAttributesClassName",
    }
    sources = [k for k in spec if k not in known]
    if not sources:
        e.add("spec", "must specify a volume type")
        return
    if len(sources) > 1:
        e.forbidden("spec", f"may not specify more than 1 volume type (found {', '.join(sorted(sources))})")
        return
    source = sources[0]
    if source not in _SERVED_SOURCES:
        e.forbidden(
            join("spec", source),
            f"volume type {source!r} is not served by nbkube's nodes "
            f"(supported: {', '.join(_SERVED_SOURCES)})",
        )
        return
    body = e.mapping(spec, source, "spec", required=True)
    if body is None:
        return
    sp = join("spec", source)
    path_value = e.string(body, "path", sp, required=True)
    if path_value and not path_value.startswith("/"):
        e.invalid(join(sp, "path"), path_value, "must be an absolute path")
    if path_value and ".." in path_value.split("/"):
        e.invalid(join(sp, "path"), path_value, "must not contain '..'")
    if source == "local" and not has_affinity:
        e.required("spec.nodeAffinity")


def validate_storage_class(e: Errors, obj: dict[str, Any]) -> None:
    provisioner = e.string(obj, "provisioner", "", required=True)
    if provisioner:
        e.extend_messages("provisioner", provisioner, naming.check_qualified_name(provisioner))
    e.string_map(obj, "parameters", "")
    e.one_of(obj, "reclaimPolicy", "", RECLAIM_POLICIES)
    e.one_of(obj, "volumeBindingMode", "", BINDING_MODES)
    e.boolean(obj, "allowVolumeExpansion", "")
    e.strings(obj, "mountOptions", "")
    for tp, term in e.maps(obj, "allowedTopologies", ""):
        for xp, expr in e.maps(term, "matchLabelExpressions", tp):
            e.string(expr, "key", xp, required=True)
            e.strings(expr, "values", xp)
    check_labels(e, obj.get("metadata") or {}, "labels", "metadata")


_IMMUTABLE = "field is immutable"


def validate_storage_update(e: Errors, new: dict[str, Any], old: dict[str, Any]) -> None:
    """What may not change: a class's provisioner and parameters; a claim's spec except its size
    and the volumeName the binder sets once; a volume's source and node affinity."""
    kind = new.get("kind")
    if kind == "StorageClass":
        for key in ("provisioner", "parameters", "reclaimPolicy", "volumeBindingMode"):
            if new.get(key) != old.get(key):
                e.forbidden(key, "updates to " + key + " are forbidden.")
        return
    new_spec = _mapping(new.get("spec"))
    old_spec = _mapping(old.get("spec"))
    if kind == "PersistentVolumeClaim":
        for key in set(new_spec) | set(old_spec):
            if key in ("resources", "volumeAttributesClassName"):
                continue
            if key == "volumeName" and not old_spec.get("volumeName"):
                continue  # the binder names the volume of a claim once
            if key == "storageClassName" and not old_spec.get("storageClassName"):
                continue  # the default class is filled in when the claim is bound
            if new_spec.get(key) != old_spec.get(key):
                e.forbidden(
                    join("spec", key),
                    "spec is immutable after creation except resources.requests "
                    "and volumeAttributesClassName for bound claims",
                )
    elif kind == "PersistentVolume":
        for key in (*_SERVED_SOURCES, "nodeAffinity", "volumeMode"):
            if old_spec.get(key) is not None and new_spec.get(key) != old_spec.get(key):
                e.invalid(join("spec", key), new_spec.get(key), _IMMUTABLE)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
