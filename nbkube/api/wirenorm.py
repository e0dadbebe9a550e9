"""What an incoming object means on the wire: JSON null is "absent", an empty label/annotation map
is no map at all.

The Kubernetes API server decodes a request body into Go structs, so a `null` becomes the field's
zero value and is then left out when the object is written back (`omitempty`); `metadata.labels: {}`
vanishes the same way. kubectl relies on it: a pod template copied from `kubectl get -o yaml`
carries `creationTimestamp: null` (what `kubectl rollout undo` sends back), and `kubectl diff`
patches with `annotations: {}`; kept literally, those nulls and empty maps would make two equal
objects differ. The registry passes every object it is asked to create or update through
`from_wire` (a copy; the caller's object is left alone).
"""

from __future__ import annotations

from typing import Any

from nbkube.api.meta import Obj

__all__ = ["from_wire"]

_SCALARS = frozenset({str, int, float, bool})
_OMIT_EMPTY_META = ("labels", "annotations")


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: v if type(v) in _SCALARS else _copy(v) for k, v in value.items() if v is not None}
        meta = out.get("metadata")
        if isinstance(meta, dict):
            for key in _OMIT_EMPTY_META:
                if meta.get(key) == {}:
                    del meta[key]
        return out
    if isinstance(value, list):
        # a null list item has no zero value we could know here: left for validation to name
        return [v if type(v) in _SCALARS or v is None else _copy(v) for v in value]
    return value


def from_wire(obj: Obj) -> Obj:
    """A deep copy of `obj` with every null-valued key removed (at any depth) and empty
    `labels`/`annotations` maps dropped from every `metadata` (the object's and its templates')."""
    out: Obj = _copy(obj)
    return out
