"""A minimal OpenAPI v3 description, there so that kubectl validates on the server.

kubectl 1.32 validates `apply`/`create` (default `--validate=strict`) by asking the server: it looks
in `/openapi/v3/<group-version>` for the PATCH operation of the object's kind (found by its
`x-kubernetes-group-version-kind`) and, if that operation lists the `fieldValidation` query
parameter, sends `fieldValidation=Strict` and lets the server refuse unknown fields (which
`resources._field_validation` does with `nbkube.api.fieldnames`). Without this document kubectl
would need the full /openapi/v2 schema for client-side validation, or `--validate=false`.

The PATCH operations deliberately do not list `application/strategic-merge-patch+json`: kubectl then
computes apply's strategic merge patch from its compiled-in types (which know every kind we serve)
rather than from schemas this document does not carry. No component schemas are served, so
`kubectl explain` does not work.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from nbkube.api.kinds import KINDS, KindInfo
from nbkube.apiserver.discovery import GIT_VERSION, served_group_versions

__all__ = ["group_version_doc", "root", "url_key"]

_QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def url_key(group_version: str) -> str:
    """`api/v1`, `apis/apps/v1`: the keys of the v3 root and the paths under /openapi/v3/."""
    return f"api/{group_version}" if "/" not in group_version else f"apis/{group_version}"


def _object_path(info: KindInfo) -> str:
    base = "/" + url_key(info.api_version)
    if info.namespaced:
        return f"{base}/namespaces/{{namespace}}/{info.plural}/{{name}}"
    return f"{base}/{info.plural}/{{name}}"


def _gvk(info: KindInfo) -> dict[str, str]:
    return {"group": info.group, "version": info.version, "kind": info.kind}


def _operation(info: KindInfo, action: str, content: tuple[str, ...]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{action}{info.kind}",
        "parameters": [
            {"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
            for p in _QUERY_PARAMS
        ],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(info),
    }
    if content:
        op["requestBody"] = {
            "content": {c: {"schema": {"type": "object"}} for c in content},
            "required": True,
        }
    return op


def group_version_doc(group_version: str) -> dict[str, Any] | None:
    infos = [i for i in KINDS if i.api_version == group_version]
    if not infos:
        return None
    paths: dict[str, Any] = {}
    for info in infos:
        paths[_object_path(info)] = {
            "get": _operation(info, "get", ()),
            "put": _operation(info, "put", ("application/json",)),
            "patch": _operation(
                info, "patch", ("application/merge-patch+json", "application/json-patch+json")
            ),
            "delete": _operation(info, "delete", ()),
        }
        collection = _object_path(info).rsplit("/", 1)[0]
        paths[collection] = {"post": _operation(info, "post", ("application/json",))}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (nbkube)", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }


def root() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for gv in served_group_versions():
        digest = (
            hashlib.sha256(json.dumps(group_version_doc(gv), sort_keys=True).encode())
            .hexdigest()[:32]
            .upper()
        )
        out[url_key(gv)] = {"serverRelativeURL": f"/openapi/v3/{url_key(gv)}?hash={digest}"}
    return {"paths": out}
