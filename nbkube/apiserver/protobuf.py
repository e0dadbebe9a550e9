"""Just enough of the Kubernetes protobuf encoding to read what kubectl's typed clients send.

`kubectl create namespace|configmap|secret` post `application/vnd.kubernetes.protobuf` bodies;
`kubectl drain` sends its Eviction and the DeleteOptions of a pod delete that way, `kubectl auth can-i`
its SelfSubjectAccessReview or SelfSubjectRulesReview, and `kubectl create role|clusterrole|rolebinding|
clusterrolebinding` (typed clients all) the RBAC kinds; none falls back to JSON on 415, so these
kinds are decoded here into their JSON shape: the `k8s\\0` magic, the runtime.Unknown envelope, then
the object by the field numbers of the upstream generated.proto files. Fields not listed are skipped;
any other kind is refused (its manifest still works through `kubectl create -f`, which sends JSON).
"""

from __future__ import annotations

import base64
from typing import Any

from nbkube.errors import BadRequest

__all__ = ["MAGIC", "decode"]

MAGIC = b"k8s\x00"

Schema = dict[int, tuple[str, Any]]  # field number -> (JSON name, type)

_STR_MAP = ("map", "string")
_OBJECT_META: Schema = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
    11: ("labels", _STR_MAP),
    12: ("annotations", _STR_MAP),
    14: ("finalizers", ("repeated", "string")),
}
_TYPE_META: Schema = {1: ("apiVersion", "string"), 2: ("kind", "string")}
_DELETE_OPTIONS: Schema = {
    1: ("gracePeriodSeconds", "int"),
    2: ("preconditions", {1: ("uid", "string"), 2: ("resourceVersion", "string")}),
    3: ("orphanDependents", "bool"),
    4: ("propagationPolicy", "string"),
    5: ("dryRun", ("repeated", "string")),
}
_EVICTION: Schema = {1: ("metadata", _OBJECT_META), 2: ("deleteOptions", _DELETE_OPTIONS)}
# k8s.io/api/authorization/v1/generated.proto (kubectl auth can-i)
_RESOURCE_ATTRIBUTES: Schema = {
    1: ("namespace", "string"),
    2: ("verb", "string"),
    3: ("group", "string"),
    4: ("version", "string"),
    5: ("resource", "string"),
    6: ("subresource", "string"),
    7: ("name", "string"),
}
_NON_RESOURCE_ATTRIBUTES: Schema = {1: ("path", "string"), 2: ("verb", "string")}
_SSAR: Schema = {
    1: ("metadata", _OBJECT_META),
    2: (
        "spec",
        {
            1: ("resourceAttributes", _RESOURCE_ATTRIBUTES),
            2: ("nonResourceAttributes", _NON_RESOURCE_ATTRIBUTES),
        },
    ),
}
_SSRR: Schema = {1: ("metadata", _OBJECT_META), 2: ("spec", {1: ("namespace", "string")})}
# k8s.io/api/rbac/v1/generated.proto (kubectl create role|clusterrole|rolebinding|clusterrolebinding)
_STRINGS = ("repeated", "string")
_POLICY_RULE: Schema = {
    1: ("verbs", _STRINGS),
    2: ("apiGroups", _STRINGS),
    3: ("resources", _STRINGS),
    4: ("resourceNames", _STRINGS),
    5: ("nonResourceURLs", _STRINGS),
}
_LABEL_SELECTOR: Schema = {
    1: ("matchLabels", _STR_MAP),
    2: (
        "matchExpressions",
        ("repeated", {1: ("key", "string"), 2: ("operator", "string"), 3: ("values", _STRINGS)}),
    ),
}
_SUBJECT: Schema = {
    1: ("kind", "string"),
    2: ("apiGroup", "string"),
    3: ("name", "string"),
    4: ("namespace", "string"),
}
_ROLE_REF: Schema = {1: ("apiGroup", "string"), 2: ("kind", "string"), 3: ("name", "string")}
_BINDING: Schema = {
    1: ("metadata", _OBJECT_META),
    2: ("subjects", ("repeated", _SUBJECT)),
    3: ("roleRef", _ROLE_REF),
}
_UNKNOWN: Schema = {1: ("typeMeta", _TYPE_META), 2: ("raw", "bytes"), 4: ("contentType", "string")}
_KINDS: dict[tuple[str, str], Schema] = {
    ("v1", "Namespace"): {
        1: ("metadata", _OBJECT_META),
        2: ("spec", {1: ("finalizers", ("repeated", "string"))}),
    },
    ("v1", "ConfigMap"): {
        1: ("metadata", _OBJECT_META),
        2: ("data", _STR_MAP),
        3: ("binaryData", ("map", "bytes")),
        4: ("immutable", "bool"),
    },
    ("v1", "Secret"): {
        1: ("metadata", _OBJECT_META),
        2: ("data", ("map", "bytes")),
        3: ("type", "string"),
        4: ("stringData", _STR_MAP),
        5: ("immutable", "bool"),
    },
    # client-go labels DeleteOptions with either group version, depending on the call
    ("v1", "DeleteOptions"): _DELETE_OPTIONS,
    ("meta.k8s.io/v1", "DeleteOptions"): _DELETE_OPTIONS,
    ("policy/v1", "Eviction"): _EVICTION,
    ("policy/v1beta1", "Eviction"): _EVICTION,
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): _SSAR,
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): _SSRR,
    ("rbac.authorization.k8s.io/v1", "Role"): {
        1: ("metadata", _OBJECT_META),
        2: ("rules", ("repeated", _POLICY_RULE)),
    },
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): {
        1: ("metadata", _OBJECT_META),
        2: ("rules", ("repeated", _POLICY_RULE)),
        # decoded so that validation refuses it rather than the role silently losing it
        3: ("aggregationRule", {1: ("clusterRoleSelectors", ("repeated", _LABEL_SELECTOR))}),
    },
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): _BINDING,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): _BINDING,
}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    for _ in range(10):  # a varint is at most 10 bytes
        if pos >= len(buf):
            break
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
    raise BadRequest("malformed protobuf body (bad varint)")


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise BadRequest("malformed protobuf body (truncated field)")
            out.append((number, buf[pos : pos + length]))
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise BadRequest(f"malformed protobuf body (wire type {wire})")
    return out


def _scalar(kind: str, value: int | bytes) -> Any:
    if kind == "bool":
        return bool(value)
    if kind == "int":  # int64 as a varint: negative numbers come as their 64-bit two's complement
        if not isinstance(value, int):
            raise BadRequest("malformed protobuf body (bytes where a number was expected)")
        return value - (1 << 64) if value >= 1 << 63 else value
    if isinstance(value, int):
        raise BadRequest("malformed protobuf body (a number where bytes were expected)")
    if kind == "bytes":
        return value
    return value.decode("utf-8", errors="replace")


def _message(buf: bytes, schema: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number not in schema:
            continue
        name, kind = schema[number]
        if isinstance(kind, dict):
            out[name] = _message(value if isinstance(value, bytes) else b"", kind)
        elif isinstance(kind, tuple) and kind[0] == "map":
            entry = _message(
                value if isinstance(value, bytes) else b"", {1: ("k", "string"), 2: ("v", kind[1])}
            )
            v = entry.get("v", b"" if kind[1] == "bytes" else "")
            out.setdefault(name, {})[entry.get("k", "")] = (
                base64.b64encode(v).decode() if kind[1] == "bytes" else v
            )
        elif isinstance(kind, tuple) and isinstance(kind[1], dict):  # repeated message
            out.setdefault(name, []).append(_message(value if isinstance(value, bytes) else b"", kind[1]))
        elif isinstance(kind, tuple):
            out.setdefault(name, []).append(_scalar(kind[1], value))
        else:
            scalar = _scalar(kind, value)
            if scalar != "":  # Go marshals every string field; its JSON omits the empty ones
                out[name] = scalar
    return out


def decode(body: bytes) -> dict[str, Any]:
    """The JSON-shaped object in a Kubernetes protobuf body (the kinds in `_KINDS`)."""
    if not body.startswith(MAGIC):
        raise BadRequest("malformed protobuf body (no k8s magic prefix)")
    envelope = _message(body[len(MAGIC) :], _UNKNOWN)
    type_meta = envelope.get("typeMeta") or {}
    key = (str(type_meta.get("apiVersion", "")), str(type_meta.get("kind", "")))
    schema = _KINDS.get(key)
    if schema is None:
        from nbkube.apiserver.resources import UnsupportedMediaType

        raise UnsupportedMediaType(
            f"protobuf bodies are decoded only for {', '.join(sorted({k for _v, k in _KINDS}))}, "
            f"not {key[1] or 'this'}; "
            "send JSON (e.g. kubectl create -f MANIFEST)"
        )
    obj = _message(envelope.get("raw", b""), schema)
    return {"apiVersion": key[0], "kind": key[1], **obj}
