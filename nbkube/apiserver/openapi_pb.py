"""/openapi/v2 in the protobuf form kubectl < 1.30 reads: gnostic's `openapi.v2.Document`.

client-go's `OpenAPISchema()` asks for `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`
and feeds whatever comes back to `proto.Unmarshal`: a JSON answer is not an error to it but garbage,
so kubectl 1.28's `apply`/`create`/`diff` need these bytes. The encoding follows the field numbers of
gnostic's openapiv2/OpenAPIv2.proto; vendor extensions, enums and defaults travel as its `Any` with
the value in the `yaml` field (JSON is YAML), which is how kube-openapi reads them back. Only what
nbkube.apiserver.openapi puts in a document is encoded; anything else is a programming error.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["encode_document"]


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _bytes(field: int, data: bytes) -> bytes:
    return _key(field, 2) + _varint(len(data)) + data


def _str(field: int, text: str) -> bytes:
    return _bytes(field, text.encode()) if text else b""


def _bool(field: int, value: bool) -> bytes:
    return _key(field, 0) + _varint(1) if value else b""


def _any(value: Any) -> bytes:
    """gnostic `Any`: the value as YAML text in field 2."""
    return _str(2, json.dumps(value, separators=(",", ":")))


def _named_any(name: str, value: Any) -> bytes:
    return _str(1, name) + _bytes(2, _any(value))


def _extensions(obj: dict[str, Any], field: int) -> bytes:
    return b"".join(_bytes(field, _named_any(k, v)) for k, v in obj.items() if k.startswith("x-"))


_SCHEMA_KEYS = frozenset(
    ["$ref", "format", "description", "default", "enum", "required", "additionalProperties", "type", "items", "allOf", "properties", "uniqueItems"]
)


def _schema(s: dict[str, Any]) -> bytes:
    unknown = {k for k in s if not k.startswith("x-")} - _SCHEMA_KEYS
    if unknown:
        raise ValueError(f"openapi v2 protobuf: schema keys not encoded: {sorted(unknown)}")
    out = _str(1, s.get("$ref", "")) + _str(2, s.get("format", "")) + _str(4, s.get("description", ""))
    if "default" in s:
        out += _bytes(5, _any(s["default"]))
    out += _bool(16, bool(s.get("uniqueItems")))
    out += b"".join(_str(19, r) for r in s.get("required", ()))
    out += b"".join(_bytes(20, _any(v)) for v in s.get("enum", ()))
    extra = s.get("additionalProperties")
    if isinstance(extra, dict):
        out += _bytes(21, _bytes(1, _schema(extra)))
    elif isinstance(extra, bool):
        out += _bytes(21, _key(2, 0) + _varint(int(extra)))
    if "type" in s:
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        out += _bytes(22, b"".join(_str(1, t) for t in types))
    if "items" in s:
        out += _bytes(23, _bytes(1, _schema(s["items"])))
    out += b"".join(_bytes(24, _schema(a)) for a in s.get("allOf", ()))
    if "properties" in s:
        named = b"".join(_bytes(1, _str(1, k) + _bytes(2, _schema(v))) for k, v in s["properties"].items())
        out += _bytes(25, named)
    return out + _extensions(s, 31)


def _query_parameter(p: dict[str, Any]) -> bytes:
    if p.get("in") != "query":
        raise ValueError(f"openapi v2 protobuf: only query parameters are encoded, not {p!r}")
    sub = (
        _str(2, "query")
        + _str(3, p.get("description", ""))
        + _str(4, p["name"])
        + _str(6, p.get("type", ""))
        + _bool(20, bool(p.get("uniqueItems")))
    )
    # ParametersItem.parameter -> Parameter.non_body_parameter -> NonBodyParameter.query_parameter_sub_schema
    return _bytes(1, _bytes(2, _bytes(3, sub)))


def _operation(op: dict[str, Any]) -> bytes:
    out = _str(5, op.get("operationId", ""))
    out += b"".join(_str(6, c) for c in op.get("produces", ()))
    out += b"".join(_str(7, c) for c in op.get("consumes", ()))
    out += b"".join(_bytes(8, _query_parameter(p)) for p in op.get("parameters", ()))
    responses = b""
    for code, resp in op.get("responses", {}).items():
        body = _str(1, resp.get("description", ""))
        if "schema" in resp:
            body += _bytes(2, _bytes(1, _schema(resp["schema"])))  # SchemaItem.schema
        responses += _bytes(1, _str(1, code) + _bytes(2, _bytes(1, body)))  # ResponseValue.response
    if responses:
        out += _bytes(9, responses)
    return out + _extensions(op, 13)


_METHODS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def _path_item(item: dict[str, Any]) -> bytes:
    return b"".join(_bytes(_METHODS[m], _operation(op)) for m, op in item.items())


def encode_document(doc: dict[str, Any]) -> bytes:
    """A Swagger 2.0 document (as nbkube.apiserver.openapi.v2_doc builds it) as gnostic protobuf."""
    info = doc.get("info", {})
    out = _str(1, doc["swagger"]) + _bytes(2, _str(1, info.get("title", "")) + _str(2, info.get("version", "")))
    paths = b"".join(_bytes(2, _str(1, p) + _bytes(2, _path_item(i))) for p, i in doc.get("paths", {}).items())
    out += _bytes(8, paths)
    defs = b"".join(_bytes(1, _str(1, n) + _bytes(2, _schema(s))) for n, s in doc.get("definitions", {}).items())
    out += _bytes(9, defs)
    return out
