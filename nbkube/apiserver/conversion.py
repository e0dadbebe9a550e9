"""Versions served by conversion: a kind stored in one version and also served in an older one.

Why: nbkube stores each kind in one version (`nbkube.api.kinds`), but clients still speak older
ones: `kubectl autoscale` (every kubectl nbkube supports) creates an `autoscaling/v1`
HorizontalPodAutoscaler while nbkube stores `autoscaling/v2`. kube-apiserver converts between the
versions of a group at its edge; so does this module: a request body is converted to the stored
version before the registry sees it, and every object that goes back (one object, the items of a
list, the objects of watch events) is converted to the version the client asked for.

Patches are refused on a converted version (a patch is written against the old version's fields,
which the stored object does not have); kubectl patches through the preferred version anyway.
Discovery lists both versions, the stored one preferred.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nbkube.api.hpa import v1_to_v2, v2_to_v1
from nbkube.api.kinds import KindInfo, lookup
from nbkube.errors import BadRequest

__all__ = ["CONVERTED", "Converted", "converted_for", "from_stored", "to_stored"]


@dataclass(frozen=True)
class Converted:
    info: KindInfo  # as served: the old api_version, the stored kind's names
    up: Callable[[dict[str, Any]], dict[str, Any]]  # served version -> stored
    down: Callable[[dict[str, Any]], dict[str, Any]]  # stored -> served version


def _served(kind: str, api_version: str) -> KindInfo:
    stored = lookup(kind)
    return KindInfo(stored.kind, api_version, stored.plural, stored.short_names, stored.namespaced, stored.has_status)


CONVERTED: tuple[Converted, ...] = (
    Converted(_served("HorizontalPodAutoscaler", "autoscaling/v1"), v1_to_v2, v2_to_v1),
)


def converted_for(api_version: str, plural: str) -> Converted | None:
    return next((c for c in CONVERTED if c.info.api_version == api_version and c.info.plural == plural), None)


def to_stored(conv: Converted, method: str, body: Any) -> Any:
    """A request body in the served version, as the stored version's object."""
    if method == "PATCH":
        raise BadRequest(
            f"patches of {conv.info.plural} are served in {lookup(conv.info.kind).api_version} only, "
            f"not {conv.info.api_version}"
        )
    if isinstance(body, dict) and body.get("kind") == conv.info.kind:
        if body.get("apiVersion") not in (None, "", conv.info.api_version):
            raise BadRequest(f"apiVersion {body.get('apiVersion')!r} does not match the path's {conv.info.api_version}")
        return conv.up(body)
    return body


def from_stored(conv: Converted, body: Any) -> Any:
    """An answer (object, list, watch event) with the stored kind's objects in the served version."""
    if not isinstance(body, dict):
        return body
    if body.get("kind") == conv.info.kind:
        return conv.down(body)
    if body.get("kind") == f"{conv.info.kind}List":
        return {
            **body,
            "apiVersion": conv.info.api_version,
            "items": [conv.down(i) if isinstance(i, dict) else i for i in body.get("items") or []],
        }
    if "type" in body and isinstance(body.get("object"), dict):
        return {**body, "object": from_stored(conv, body["object"])}
    return body
