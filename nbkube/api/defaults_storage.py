"""Defaults of StatefulSets and of the storage kinds (PersistentVolume, PersistentVolumeClaim,
StorageClass), as upstream's apps/v1 and core/v1 defaulting fills them.

Kept apart from `defaults.py` so the storage kinds' rules sit together; `defaults.apply_defaults`
dispatches here through `BY_KIND`.
"""

from __future__ import annotations

from typing import Any

from nbkube.api.meta import Obj

__all__ = ["BY_KIND", "default_claim_spec"]


def _dict(parent: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = parent.get(key)
    if value is None:
        value = parent[key] = {}
    return value if isinstance(value, dict) else None


def _set(d: dict[str, Any], key: str, value: Any) -> None:
    current = d.get(key)
    if current is None or (isinstance(current, str) and current == ""):
        d[key] = value


def default_claim_spec(spec: dict[str, Any]) -> None:
    """A claim's (or a claim template's) spec: volumeMode Filesystem."""
    _set(spec, "volumeMode", "Filesystem")


def _statefulset(obj: Obj) -> None:
    from nbkube.api.defaults import default_pod_spec  # defaults.py imports this module

    spec = _dict(obj, "spec")
    if spec is None:
        return
    _set(spec, "replicas", 1)
    _set(spec, "podManagementPolicy", "OrderedReady")
    _set(spec, "revisionHistoryLimit", 10)
    strategy = _dict(spec, "updateStrategy")
    if strategy is not None:
        _set(strategy, "type", "RollingUpdate")
        if strategy.get("type") == "RollingUpdate":
            rolling = _dict(strategy, "rollingUpdate")
            if rolling is not None:
                _set(rolling, "partition", 0)
    retention = _dict(spec, "persistentVolumeClaimRetentionPolicy")
    if retention is not None:
        _set(retention, "whenDeleted", "Retain")
        _set(retention, "whenScaled", "Retain")
    template = spec.get("template")
    pod_spec = template.get("spec") if isinstance(template, dict) else None
    if isinstance(pod_spec, dict):
        default_pod_spec(pod_spec)
    for claim in spec.get("volumeClaimTemplates") or []:
        if isinstance(claim, dict):
            cspec = _dict(claim, "spec")
            if cspec is not None:
                default_claim_spec(cspec)


def _volume(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    _set(spec, "persistentVolumeReclaimPolicy", "Retain")
    _set(spec, "volumeMode", "Filesystem")


def _claim(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    if spec is not None:
        default_claim_spec(spec)


def _storage_class(obj: Obj) -> None:
    _set(obj, "reclaimPolicy", "Delete")
    _set(obj, "volumeBindingMode", "Immediate")


BY_KIND = {
    "StatefulSet": _statefulset,
    "PersistentVolume": _volume,
    "PersistentVolumeClaim": _claim,
    "StorageClass": _storage_class,
}
