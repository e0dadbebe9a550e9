"""`kubectl get` columns of StatefulSets and the storage kinds, as kubectl's own printers show them.

`printers.table_rows` takes the tables from `TABLES` and a StorageClass's NAME cell from
`display_name` (`local-path (default)`, as upstream marks the default class).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nbkube.api.meta import Obj

__all__ = ["DEFAULT_CLASS_ANNOTATION", "TABLES", "display_name", "is_default_class"]

DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
_NONE = "<none>"
_SHORT_MODES = {
    "ReadWriteOnce": "RWO",
    "ReadOnlyMany": "ROX",
    "ReadWriteMany": "RWX",
    "ReadWriteOncePod": "RWOP",
}
Row = list[str]


def is_default_class(obj: Obj) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(DEFAULT_CLASS_ANNOTATION, "")).lower() == "true"


def display_name(kind: str, obj: Obj) -> str:
    name = str((obj.get("metadata") or {}).get("name", ""))
    if kind == "StorageClass" and is_default_class(obj):
        return f"{name} (default)"
    return name


def _d(obj: Obj, key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _modes(modes: Any) -> str:
    return ",".join(_SHORT_MODES.get(str(m), str(m)) for m in modes or [])


def _age(obj: Obj, now: float) -> str:
    from nbkube.api.printers import age_of  # printers imports this module

    return age_of(obj, now)


def _statefulset(obj: Obj, now: float, wide: bool) -> Row:
    from nbkube.api.printers import containers_images, template_containers

    spec, st = _d(obj, "spec"), _d(obj, "status")
    row = [f"{int(st.get('readyReplicas') or 0)}/{int(spec.get('replicas', 1) or 0)}", _age(obj, now)]
    if wide:
        row += containers_images(template_containers(obj))
    return row


def _volume(obj: Obj, now: float, wide: bool) -> Row:
    spec, st = _d(obj, "spec"), _d(obj, "status")
    ref = spec.get("claimRef") or {}
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref.get("name") else ""
    row = [
        str((spec.get("capacity") or {}).get("storage", "")),
        _modes(spec.get("accessModes")),
        str(spec.get("persistentVolumeReclaimPolicy") or ""),
        str(st.get("phase") or ""),
        claim,
        str(spec.get("storageClassName") or ""),
        str(spec.get("volumeAttributesClassName") or _NONE),
        str(st.get("reason") or ""),
        _age(obj, now),
    ]
    if wide:
        row.append(str(spec.get("volumeMode") or ""))
    return row


def _claim(obj: Obj, now: float, wide: bool) -> Row:
    spec, st = _d(obj, "spec"), _d(obj, "status")
    bound = st.get("phase") == "Bound"
    row = [
        str(st.get("phase") or ""),
        str(spec.get("volumeName") or ""),
        str((st.get("capacity") or {}).get("storage", "")) if bound else "",
        _modes(st.get("accessModes")) if bound else "",
        str(spec.get("storageClassName") or ""),
        str(spec.get("volumeAttributesClassName") or _NONE),
        _age(obj, now),
    ]
    if wide:
        row.append(str(spec.get("volumeMode") or ""))
    return row


def _storage_class(obj: Obj, now: float, wide: bool) -> Row:
    return [
        str(obj.get("provisioner") or ""),
        str(obj.get("reclaimPolicy") or "Delete"),
        str(obj.get("volumeBindingMode") or "Immediate"),
        "true" if obj.get("allowVolumeExpansion") else "false",
        _age(obj, now),
    ]


_Columns = Callable[[Obj, float, bool], Row]

# kind -> (headers after NAME, wide-only extra headers, row function)
TABLES: dict[str, tuple[list[str], list[str], _Columns]] = {
    "StatefulSet": (["READY", "AGE"], ["CONTAINERS", "IMAGES"], _statefulset),
    "PersistentVolume": (
        [
            "CAPACITY",
            "ACCESS MODES",
            "RECLAIM POLICY",
            "STATUS",
            "CLAIM",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "REASON",
            "AGE",
        ],
        ["VOLUMEMODE"],
        _volume,
    ),
    "PersistentVolumeClaim": (
        ["STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"],
        ["VOLUMEMODE"],
        _claim,
    ),
    "StorageClass": (
        ["PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"],
        [],
        _storage_class,
    ),
}
