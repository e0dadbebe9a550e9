"""The protobuf bodies of `kubectl create namespace|configmap|secret`, decoded to JSON shape."""

from __future__ import annotations

import pytest

from nbkube.apiserver.protobuf import MAGIC, decode
from nbkube.apiserver.resources import UnsupportedMediaType
from nbkube.errors import BadRequest


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _entry(k: str, v: bytes) -> bytes:
    return _field(1, k.encode()) + _field(2, v)


def _body(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _field(1, api_version.encode()) + _field(2, kind.encode())
    return MAGIC + _field(1, type_meta) + _field(2, raw) + _field(4, b"application/vnd.kubernetes.protobuf")


def test_namespace() -> None:
    meta = _field(1, b"team") + _field(2, b"") + _field(11, _entry("env", b"dev"))
    obj = decode(_body("v1", "Namespace", _field(1, meta) + _field(2, b"")))
    assert obj == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "team", "labels": {"env": "dev"}},
        "spec": {},
    }


def test_configmap_and_secret() -> None:
    cm = decode(
        _body("v1", "ConfigMap", _field(1, _field(1, b"c")) + _field(2, _entry("a", b"b")) + _field(4, 1))
    )
    assert cm["data"] == {"a": "b"} and cm["immutable"] is True and cm["metadata"] == {"name": "c"}
    secret = decode(
        _body(
            "v1",
            "Secret",
            _field(1, _field(1, b"s")) + _field(2, _entry("pw", b"hunter2")) + _field(3, b"Opaque"),
        )
    )
    assert secret["data"] == {"pw": "aHVudGVyMg=="} and secret["type"] == "Opaque"


def test_other_kinds_and_garbage_are_refused() -> None:
    with pytest.raises(UnsupportedMediaType):
        decode(_body("batch/v1", "CronJob", b""))
    with pytest.raises(BadRequest):
        decode(b"not protobuf")
    with pytest.raises(BadRequest):
        decode(MAGIC + b"\x0a\xff")  # a length running past the end


def test_eviction_and_delete_options_of_kubectl_drain() -> None:
    opts = _field(1, (1 << 64) - 1) + _field(2, _field(2, b"42")) + _field(4, b"Background")
    eviction = decode(_body("policy/v1", "Eviction", _field(1, _field(1, b"web")) + _field(2, opts)))
    assert eviction == {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "web"},
        "deleteOptions": {
            "gracePeriodSeconds": -1,  # int64 as a two's complement varint
            "preconditions": {"resourceVersion": "42"},
            "propagationPolicy": "Background",
        },
    }
    plain = decode(_body("meta.k8s.io/v1", "DeleteOptions", _field(1, 30)))
    assert plain["gracePeriodSeconds"] == 30
