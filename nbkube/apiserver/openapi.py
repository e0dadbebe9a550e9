"""The OpenAPI documents: /openapi/v2 and /openapi/v3, with the full schema of every served kind.

kubectl reads them for four things. `kubectl explain` walks the v3 schemas (found by their
`x-kubernetes-group-version-kind`). kubectl < 1.30 loads /openapi/v2 before `apply`, `create` and
`diff` validate anything, and computes apply's strategic merge patch from its definitions (their
`x-kubernetes-patch-merge-key`/`-strategy`). Every kubectl looks in the v3 document for the PATCH
operation of an object's kind: when it lists the `fieldValidation` query parameter, kubectl sends
`fieldValidation=Strict` and lets the server refuse unknown fields (`resources._field_validation`
does, with `nbkube.api.fieldnames`); otherwise it validates on the client against the v2 schema.

The schemas come from `nbkube.api.schemas` (types and descriptions, kept equal to validation's field
tables by tests) and the patch annotations from `nbkube.api.patch.FIELD_STRATEGIES`, so nothing here
knows a field. The v3 PATCH operations deliberately do not list
`application/strategic-merge-patch+json`: kubectl >= 1.30 then computes apply's patch from its
compiled-in types, as it did before these schemas existed.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from nbkube.api import patch, schemas
from nbkube.api.kinds import KINDS, KindInfo
from nbkube.apiserver import openapi_pb
from nbkube.apiserver.discovery import GIT_VERSION

__all__ = [
    "V2_PROTOBUF",
    "definitions",
    "group_version_doc",
    "group_version_json",
    "root",
    "url_key",
    "v2_doc",
    "v2_json",
    "v2_protobuf",
]

# what kubectl asks for (`...@v1.0+protobuf`), as kube-apiserver names it in its answer: Go's media
# type parser refuses the `@`, and client-go parses the response's Content-Type
V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
# the scalar types with a model of their own, as upstream has them
_SCALAR_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "time": (
        _META + "Time",
        {"type": "string", "format": "date-time", "description": "A timestamp in RFC 3339 form, in UTC."},
    ),
    "microtime": (
        _META + "MicroTime",
        {"type": "string", "format": "date-time", "description": "A timestamp with microseconds (RFC 3339)."},
    ),
    "quantity": (
        "io.k8s.apimachinery.pkg.api.resource.Quantity",
        {
            "type": "string",
            "description": "A fixed-point number with an optional suffix: 100m (0.1), 128Mi (2^27), "
            "1e3, 2Gi. Written as a string or a number.",
        },
    ),
    "intstr": (
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        {
            "type": "string",
            "format": "int-or-string",
            "x-kubernetes-int-or-string": True,
            "description": "An int32 or a string (a name, or a percentage such as 25%).",
        },
    ),
}
# the scalar models that v3 (unlike v2) types as "one of" two JSON types
_V3_ONE_OF = {"intstr": ("integer", "string"), "quantity": ("string", "number")}
_PRIMITIVES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "int32": {"type": "integer", "format": "int32"},
    "int64": {"type": "integer", "format": "int64"},
    "boolean": {"type": "boolean"},
    "number": {"type": "number", "format": "double"},
    "byte": {"type": "string", "format": "byte"},
    "object": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
}


def url_key(group_version: str) -> str:
    """`api/v1`, `apis/apps/v1`: the keys of the v3 root and the paths under /openapi/v3/."""
    return f"api/{group_version}" if "/" not in group_version else f"apis/{group_version}"


# -- schemas ---------------------------------------------------------------------------------------


def _base(type_: str) -> str:
    while type_.startswith(("[]", "{}")):
        type_ = type_[2:]
    return type_


def _model(base: str) -> str | None:
    if base in _SCALAR_MODELS:
        return _SCALAR_MODELS[base][0]
    if base in schemas.SHAPES:
        return schemas.SHAPES[base].model
    return None


def _type_schema(type_: str, ref: str) -> dict[str, Any]:
    if type_.startswith("[]"):
        return {"type": "array", "items": _type_schema(type_[2:], ref)}
    if type_.startswith("{}"):
        return {"type": "object", "additionalProperties": _type_schema(type_[2:], ref)}
    if type_ in _PRIMITIVES:
        return dict(_PRIMITIVES[type_])
    model = _model(type_)
    if model is None:
        raise ValueError(f"nbkube.api.schemas: unknown field type {type_!r}")
    return {"$ref": ref + model}


def _list_extensions(strategy: patch.Strategy) -> dict[str, Any]:
    """The patch and list-type extensions upstream puts on a field tagged with `strategy`."""
    out: dict[str, Any] = {}
    if strategy.merge:
        parts = ["merge"] if strategy.is_list else []
        if strategy.retain_keys:
            parts.append("retainKeys")
        if parts:
            out["x-kubernetes-patch-strategy"] = ",".join(parts)
        if strategy.merge_key:
            out["x-kubernetes-patch-merge-key"] = strategy.merge_key
    if strategy.is_list:
        if strategy.merge and strategy.merge_key:
            out["x-kubernetes-list-type"] = "map"
            out["x-kubernetes-list-map-keys"] = [strategy.merge_key]
        elif strategy.merge:
            out["x-kubernetes-list-type"] = "set"
        else:
            out["x-kubernetes-list-type"] = "atomic"
    return out


def _resolve(shape: str, dotted: str) -> tuple[str, str]:
    """The (shape, field) a FIELD_STRATEGIES path (`spec.template.spec.containers[].ports`) ends at."""
    *parents, last = dotted.split(".")
    for part in parents:
        name = part.removesuffix("[]")
        if name not in schemas.SHAPES[shape].fields:
            raise ValueError(f"patch strategy path {dotted!r}: {shape} has no field {name!r}")
        shape = _base(schemas.SHAPES[shape].fields[name][0])
        if shape not in schemas.SHAPES:
            raise ValueError(f"patch strategy path {dotted!r}: {part!r} is not an object")
    if last not in schemas.SHAPES[shape].fields:
        raise ValueError(f"patch strategy path {dotted!r}: {shape} has no field {last!r}")
    return shape, last


@functools.cache
def _strategies() -> dict[tuple[str, str], patch.Strategy]:
    """(shape, field) -> how it merges, from the strategic merge patch table of every kind."""
    out: dict[tuple[str, str], patch.Strategy] = {}
    for info in KINDS:
        for dotted, strategy in patch.field_strategies(info.kind).items():
            out[_resolve(info.kind, dotted)] = strategy
    return out


def _gvk(info: KindInfo) -> dict[str, str]:
    return {"group": info.group, "version": info.version, "kind": info.kind}


def _shape_schema(name: str, v3: bool) -> dict[str, Any]:
    shape = schemas.SHAPES[name]
    ref = "#/components/schemas/" if v3 else "#/definitions/"
    strategies = _strategies()
    props: dict[str, Any] = {}
    for field in sorted(shape.fields):
        type_, description = shape.fields[field]
        schema = _type_schema(type_, ref)
        if v3 and "$ref" in schema:
            # as upstream's v3: a reference beside a description is wrapped in allOf
            schema = {"allOf": [schema], **({"default": {}} if type_ in schemas.SHAPES else {})}
        schema["description"] = description
        if field in shape.enums:
            schema["enum"] = list(shape.enums[field])
        strategy = strategies.get((name, field))
        if strategy is not None:
            schema.update(_list_extensions(strategy))
        props[field] = schema
    out: dict[str, Any] = {"description": shape.description, "type": "object", "properties": props}
    if shape.required:
        out["required"] = sorted(shape.required)
    info = next((i for i in KINDS if i.kind == name), None)
    if info is not None:
        out["x-kubernetes-group-version-kind"] = [_gvk(info)]
    return out


def _closure(roots: list[str]) -> list[str]:
    """The shape and scalar-model names `roots` reference, transitively, roots first."""
    seen: list[str] = []
    todo = list(roots)
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.append(name)
        if name in schemas.SHAPES:
            todo.extend(
                b for t, _ in schemas.SHAPES[name].fields.values() if _model(b := _base(t)) is not None
            )
    return seen


def definitions(roots: list[str], v3: bool) -> dict[str, Any]:
    """Model name -> schema, for the kinds (shapes) `roots` and everything they reference."""
    out: dict[str, Any] = {}
    for name in _closure(roots):
        if name in _SCALAR_MODELS:
            model, schema = _SCALAR_MODELS[name]
            out[model] = dict(schema)
            if v3 and name in _V3_ONE_OF:
                # as upstream's v3: a value of either type, so `kubectl explain` names the model
                del out[model]["type"]
                out[model]["oneOf"] = [{"type": t} for t in _V3_ONE_OF[name]]
        else:
            out[schemas.SHAPES[name].model] = _shape_schema(name, v3)
    return dict(sorted(out.items()))


# -- operations ------------------------------------------------------------------------------------


def _object_path(info: KindInfo) -> str:
    base = "/" + url_key(info.api_version)
    if info.namespaced:
        return f"{base}/namespaces/{{namespace}}/{info.plural}/{{name}}"
    return f"{base}/{info.plural}/{{name}}"


def _operation(info: KindInfo, action: str, content: tuple[str, ...], v3: bool) -> dict[str, Any]:
    model = schemas.SHAPES[info.kind].model
    if v3:
        ref: dict[str, Any] = {"$ref": f"#/components/schemas/{model}"}
        params: list[dict[str, Any]] = [
            {"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": True}} for p in _QUERY_PARAMS
        ]
        responses: dict[str, Any] = {
            "200": {"description": "OK", "content": {"application/json": {"schema": ref}}}
        }
    else:
        ref = {"$ref": f"#/definitions/{model}"}
        params = [{"name": p, "in": "query", "type": "string", "uniqueItems": True} for p in _QUERY_PARAMS]
        responses = {"200": {"description": "OK", "schema": ref}}
    op: dict[str, Any] = {
        "operationId": f"{action}{info.kind}",
        "parameters": params,
        "responses": responses,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(info),
    }
    if content:
        if v3:
            op["requestBody"] = {"content": {c: {"schema": {"type": "object"}} for c in content}, "required": True}
        else:
            op["consumes"] = list(content)
    return op


def _paths(infos: list[KindInfo], v3: bool) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for info in infos:
        merge: tuple[str, ...] = (
            "application/apply-patch+yaml",
            "application/merge-patch+json",
            "application/json-patch+json",
        )
        if not v3:
            # kubectl < 1.30 computes apply's strategic patch from the v2 definitions
            merge = (*merge, "application/strategic-merge-patch+json")
        paths[_object_path(info)] = {
            "get": _operation(info, "get", (), v3),
            "put": _operation(info, "put", ("application/json",), v3),
            "patch": _operation(info, "patch", merge, v3),
            "delete": _operation(info, "delete", (), v3),
        }
        collection = _object_path(info).rsplit("/", 1)[0]
        paths[collection] = {"post": _operation(info, "post", ("application/json",), v3)}
    return paths


# -- the documents ---------------------------------------------------------------------------------


def _info() -> dict[str, str]:
    return {"title": "Kubernetes (nbkube)", "version": GIT_VERSION}


def _served_group_versions() -> list[str]:
    out: list[str] = []
    for info in KINDS:
        if info.api_version not in out:
            out.append(info.api_version)
    return out


@functools.cache
def group_version_doc(group_version: str) -> dict[str, Any] | None:
    """The v3 document of one group/version (its kinds' operations and schemas), or None."""
    infos = [i for i in KINDS if i.api_version == group_version]
    if not infos:
        return None
    return {
        "openapi": "3.0.0",
        "info": _info(),
        "paths": _paths(infos, v3=True),
        "components": {"schemas": definitions([i.kind for i in infos], v3=True)},
    }


@functools.cache
def group_version_json(group_version: str) -> bytes | None:
    doc = group_version_doc(group_version)
    return None if doc is None else json.dumps(doc, separators=(",", ":")).encode()


@functools.cache
def root() -> dict[str, Any]:
    """The v3 index: each group/version's document URL, with a hash of its content."""
    out: dict[str, Any] = {}
    for gv in _served_group_versions():
        body = group_version_json(gv)
        assert body is not None
        digest = hashlib.sha512(body).hexdigest()[:128].upper()
        out[url_key(gv)] = {"serverRelativeURL": f"/openapi/v3/{url_key(gv)}?hash={digest}"}
    return {"paths": out}


@functools.cache
def v2_doc() -> dict[str, Any]:
    """The whole API in one Swagger 2.0 document, as kubectl < 1.30 loads it."""
    return {
        "swagger": "2.0",
        "info": _info(),
        "paths": _paths(list(KINDS), v3=False),
        "definitions": definitions([i.kind for i in KINDS], v3=False),
    }


@functools.cache
def v2_json() -> bytes:
    return json.dumps(v2_doc(), separators=(",", ":")).encode()


@functools.cache
def v2_protobuf() -> bytes:
    """/openapi/v2 as kubectl < 1.30 asks for it (see nbkube.apiserver.openapi_pb)."""
    return openapi_pb.encode_document(v2_doc())
