"""Defaults of StatefulSets and of the storage kinds (PersistentVolume, PersistentVolumeClaim,
StorageClass), as upstream's apps/v1 and core/v1 defaulting fills them.

Kept apart from `defaults.py` so the storage kinds' rules sit together; `defaults.apply_defaults`
dispatches here through `BY_KIND`.
"""

from __future__ import annotations

from typing import Any

from nbkube.api.defaulting import child_dict as _dict
from nbkube.api.defaulting import default_rolling_strategy
from nbkube.api.defaulting import set_default as _set
from nbkube.api.meta import Obj

__all__ = ["BY_KIND", "default_claim_spec"]


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
    default_rolling_strategy(spec, "updateStrategy", partition=0)
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
