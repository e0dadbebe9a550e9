"""The Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`), both ways, for every kind
nbkube serves, driven by the schema table in protobuf_schema.py (generated from upstream's
generated.proto descriptors) rather than by code per kind.

kubectl's typed clients (`create deployment|quota|service|token|...`, `auth can-i`, `scale`, `drain`)
send protobuf and ask for it back; none falls back to JSON on 415. A body is the `k8s\\0` magic, then
a runtime.Unknown envelope (typeMeta, raw, contentEncoding, contentType) whose `raw` is the object's
message. Messages map field by field onto the JSON shape the resource handlers take; a few upstream
messages are JSON values of their own (Time, MicroTime, Duration, IntOrString, Quantity, FieldsV1,
RawExtension, and ExtraValue's list of strings); a message Go embeds `json:",inline"` (a Probe's
handler, a Volume's source) has its fields in the parent's JSON object.

Decoding refuses a field number the table does not have (400 naming the message and the number):
the table holds every field upstream defines for these messages, so an unknown number is data no
Kubernetes server would keep, not something to drop. Fields upstream defines but nbkube does not
honour are decoded like their JSON and meet the same validation (a field error naming them). Go
writes every string and every non-pointer number and boolean, set or not; what its JSON would omit
(empty strings; the zeros of non-pointer `omitempty` fields, listed in ZERO_IS_ABSENT) means "absent"
here too, while a pointer's explicit 0 or false (replicas: 0, gracePeriodSeconds: 0) is kept.

Encoding raises NotEncodable for an object the table cannot hold (a kind or field it lacks); the
HTTP layer then answers JSON, which every protobuf client also accepts (see `negotiate`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import functools
import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from nbkube.apiserver.protobuf_schema import KINDS, MESSAGES, ZERO_IS_ABSENT
from nbkube.errors import BadRequest, NbkubeError

__all__ = [
    "CONTENT_TYPE",
    "MAGIC",
    "NotAcceptable",
    "WATCH_CONTENT_TYPE",
    "NotEncodable",
    "decode",
    "encode",
    "encode_watch_event",
    "negotiate",
]

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
WATCH_CONTENT_TYPE = "application/vnd.kubernetes.protobuf;stream=watch"


class NotEncodable(Exception):
    """The object has a kind or field the protobuf schema lacks: answer it as JSON instead."""


class NotAcceptable(NbkubeError):
    """The client takes only protobuf, and the answer cannot be put in it."""

    reason = "NotAcceptable"
    code = 406


@dataclass
class _Field:
    number: int
    name: str
    kind: str  # a scalar, a codec scalar (Time, Quantity, ...) or "" for a message
    card: int  # 0 one value, 1 repeated, 2 map<string, kind>, 3 embedded json:",inline"
    message: _Message | None = None
    where: str = ""  # message.field, for error messages
    key: bytes = b""  # the field's tag as its wire type writes it (encoding)


@dataclass
class _Message:
    name: str
    by_number: dict[int, _Field] = field(default_factory=dict)
    by_name: dict[str, _Field] = field(default_factory=dict)
    zero_is_absent: frozenset[int] = frozenset()
    inline: dict[str, _Field] = field(default_factory=dict)  # JSON key -> the embedded field holding it


_WIRE = {"int32": 0, "int64": 0, "uint32": 0, "uint64": 0, "bool": 0, "double": 1, "float": 5}


def _varint_bytes(n: int) -> bytes:
    out = bytearray()
    _put_varint(out, n)
    return bytes(out)


def _compile() -> dict[str, _Message]:
    messages = {name: _Message(name, zero_is_absent=ZERO_IS_ABSENT.get(name, frozenset())) for name in MESSAGES}
    for name, fields in MESSAGES.items():
        m = messages[name]
        for number, (json_name, kind, card) in fields.items():
            sub = messages.get(kind)
            f = _Field(number, json_name, "" if sub else kind, card, sub, f"{name}.{json_name}")
            wire = _WIRE.get(f.kind, 2) if card != 2 else 2
            f.key = _varint_bytes(number << 3 | wire)
            m.by_number[number] = f
            m.by_name[json_name] = f

    def inline_keys(m: _Message) -> set[str]:
        keys = set(m.by_name) - {f.name for f in m.by_name.values() if f.card == 3}
        for f in m.by_name.values():
            if f.card == 3 and f.message is not None:
                keys |= inline_keys(f.message)
        return keys

    for m in messages.values():
        for f in m.by_number.values():
            if f.card == 3 and f.message is not None:
                for key in inline_keys(f.message):
                    m.inline[key] = f
    return messages


_VARINT_KINDS = frozenset({"int32", "int64", "uint32", "uint64", "bool"})
_U64 = (1 << 64) - 1


# -- decoding ----------------------------------------------------------------------------------------


def _malformed(what: str) -> BadRequest:
    return BadRequest(f"malformed protobuf body ({what})")


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    n = len(buf)
    for _ in range(10):  # a varint is at most 10 bytes
        if pos >= n:
            break
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
    raise _malformed("bad varint")


def _fields(buf: bytes, where: str) -> list[tuple[int, int, int | bytes]]:
    """(number, wire type, value) of each field in `buf`: an int for wire types 0, 1 and 5."""
    out: list[tuple[int, int, int | bytes]] = []
    append = out.append
    pos, n = 0, len(buf)
    while pos < n:
        tag = buf[pos]
        if tag < 0x80:  # one-byte tags and lengths are nearly all of them: no call
            pos += 1
        else:
            tag, pos = _varint(buf, pos)
        wire = tag & 7
        if wire == 2:
            if pos >= n:
                raise _malformed(f"a field of {where} runs past the end")
            length = buf[pos]
            if length < 0x80:
                pos += 1
            else:
                length, pos = _varint(buf, pos)
            end = pos + length
            if end > n:
                raise _malformed(f"a field of {where} runs past the end")
            append((tag >> 3, 2, buf[pos:end]))
            pos = end
        elif wire == 0:
            value, pos = _varint(buf, pos)
            append((tag >> 3, 0, value))
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > n:
                raise _malformed(f"a field of {where} runs past the end")
            append((tag >> 3, wire, int.from_bytes(buf[pos : pos + size], "little")))
            pos += size
        else:
            raise _malformed(f"wire type {wire} in {where}")
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


@functools.lru_cache(maxsize=4096)  # objects share timestamps (a list's pods, their conditions)
def _rfc3339(seconds: int, nanos: int, micro: bool) -> str:
    try:
        t = _dt.datetime.fromtimestamp(seconds, _dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise _malformed(f"time {seconds} out of range") from None
    if micro:
        return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _go_duration(ns: int) -> str:
    """A Go time.Duration's String() (what metav1.Duration marshals to JSON)."""
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{sign}{_trim(ns / size)}{unit}"
    h, rest = divmod(ns, 3_600_000_000_000)
    m, rest = divmod(rest, 60_000_000_000)
    s = _trim(rest / 1e9) + "s"
    return sign + (f"{h}h{m}m{s}" if h else f"{m}m{s}" if m else s)


def _trim(x: float) -> str:
    return f"{x:.9f}".rstrip("0").rstrip(".")


def _special(kind: str, data: bytes, where: str) -> Any:
    """The JSON value of a message the codec treats as a scalar (None: absent)."""
    if kind == "StringList":
        return [_text(v, where) for n, _w, v in _fields(data, where) if n == 1]
    values: dict[int, int | bytes] = {number: value for number, _w, value in _fields(data, where)}
    if kind in ("Time", "MicroTime"):
        if not data:  # Go writes a zero Time as an empty message: JSON null
            return None
        return _rfc3339(_signed(_int(values.get(1, 0), where)), _int(values.get(2, 0), where), kind == "MicroTime")
    if kind == "Quantity":
        return _text(values.get(1, b""), where)
    if kind == "IntOrString":
        if _int(values.get(1, 0), where) == 1:
            return _text(values.get(3, b""), where)
        return _signed(_int(values.get(2, 0), where))
    if kind == "Duration":
        return _go_duration(_signed(_int(values.get(1, 0), where)))
    raw = values.get(1, b"")
    if not isinstance(raw, bytes):
        raise _malformed(f"a number where bytes were expected in {where}")
    if kind == "RawExtension" and raw.startswith(MAGIC):
        return decode(raw)
    try:  # FieldsV1 and RawExtension hold JSON
        return json.loads(raw) if raw else None
    except ValueError:
        raise BadRequest(f"{where} does not hold JSON") from None


def _int(value: int | bytes, where: str) -> int:
    if not isinstance(value, int):
        raise _malformed(f"bytes where a number was expected in {where}")
    return value


def _text(value: int | bytes, where: str) -> str:
    if not isinstance(value, bytes):
        raise _malformed(f"a number where a string was expected in {where}")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"{where} is not valid UTF-8") from None


def _scalar(kind: str, wire: int, value: int | bytes, where: str) -> Any:
    if kind == "string":
        return _text(value, where)
    if kind == "bytes":
        if not isinstance(value, bytes):
            raise _malformed(f"a number where bytes were expected in {where}")
        return base64.b64encode(value).decode()
    if kind in ("double", "float"):
        if wire != (1 if kind == "double" else 5):
            raise _malformed(f"wire type {wire} for the {kind} {where}")
        assert isinstance(value, int)
        fmt = "<d" if kind == "double" else "<f"
        return struct.unpack(fmt, value.to_bytes(8 if kind == "double" else 4, "little"))[0]
    if wire != 0:
        raise _malformed(f"wire type {wire} for the {kind} {where}")
    assert isinstance(value, int)
    if kind == "bool":
        return value != 0
    if kind in ("int32", "int64"):  # negative numbers come as their 64-bit two's complement
        return _signed(value)
    return value


def _packed(kind: str, data: bytes, where: str) -> list[Any]:
    out: list[Any] = []
    pos = 0
    while pos < len(data):
        value, pos = _varint(data, pos)
        out.append(_scalar(kind, 0, value, where))
    return out


def _value(f: _Field, wire: int, value: int | bytes, where: str = "") -> Any:
    where = where or f.where
    if f.message is not None:
        if not isinstance(value, bytes):
            raise _malformed(f"a number where a message was expected in {where}")
        return _message(value, f.message)
    if f.kind[0].isupper():
        if not isinstance(value, bytes):
            raise _malformed(f"a number where a message was expected in {where}")
        return _special(f.kind, value, where)
    return _scalar(f.kind, wire, value, where)


def _map_entry(f: _Field, data: bytes) -> tuple[str, Any]:
    where = f.where
    key, value = "", None
    for number, wire, v in _fields(data, where):
        if number == 1:
            key = _text(v, where)
        elif number == 2:
            value = _value(f, wire, v, f"{where}[{key}]")
        else:
            raise BadRequest(f"protobuf body: a map entry of {where} has no field {number}")
    if value is None:  # the zero value, which Go leaves out of a map entry
        value = {} if f.message is not None else "" if f.kind in ("string", "bytes", "Quantity") else 0
    return key, value


def _message(buf: bytes, msg: _Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    by_number = msg.by_number
    for number, wire, value in _fields(buf, msg.name):
        f = by_number.get(number)
        if f is None:
            raise BadRequest(f"protobuf body: {msg.name} has no field number {number}")
        card = f.card
        if card == 0:
            # the common cases first, without a call: strings, messages, integers
            kind = f.kind
            if wire == 2 and kind == "string":
                if value:
                    out[f.name] = _text(value, f.where)
                else:  # Go marshals every string field; its JSON omits the empty ones
                    out.pop(f.name, None)
                continue
            if wire == 2 and f.message is not None:
                out[f.name] = _message(value, f.message)  # type: ignore[arg-type]
                continue
            v = _value(f, wire, value)
            # Go marshals every non-pointer number and boolean; its JSON omits the zeros of the
            # `omitempty` ones (ZERO_IS_ABSENT)
            if v is None or v == "" or ((v is False or v == 0) and number in msg.zero_is_absent):
                out.pop(f.name, None)
            else:
                out[f.name] = v
        elif card == 1:
            items = out.setdefault(f.name, [])
            if wire == 2 and f.kind in _VARINT_KINDS and isinstance(value, bytes):
                items.extend(_packed(f.kind, value, f.where))
            else:
                items.append(_value(f, wire, value))
        elif card == 2:
            if not isinstance(value, bytes):
                raise _malformed(f"a number where a map entry was expected in {f.where}")
            k, v = _map_entry(f, value)
            out.setdefault(f.name, {})[k] = v
        else:  # embedded with json:",inline": its fields are the parent's
            out.update(_value(f, wire, value))
    return out


def _envelope(body: bytes) -> tuple[str, str, bytes, str]:
    """apiVersion, kind, raw and contentEncoding of a `k8s\\0` + runtime.Unknown body."""
    if not body.startswith(MAGIC):
        raise _malformed("no k8s magic prefix")
    api_version = kind = encoding = ""
    raw = b""
    for number, _wire, value in _fields(body[len(MAGIC) :], "runtime.Unknown"):
        if number == 1:
            for n, _w, v in _fields(_bytes(value, "typeMeta"), "runtime.TypeMeta"):
                if n == 1:
                    api_version = _text(v, "typeMeta.apiVersion")
                elif n == 2:
                    kind = _text(v, "typeMeta.kind")
        elif number == 2:
            raw = _bytes(value, "raw")
        elif number == 3:
            encoding = _text(value, "contentEncoding")
        elif number not in (4,):
            raise BadRequest(f"protobuf body: runtime.Unknown has no field number {number}")
    return api_version, kind, raw, encoding


def _bytes(value: int | bytes, where: str) -> bytes:
    if not isinstance(value, bytes):
        raise _malformed(f"a number where bytes were expected in runtime.Unknown.{where}")
    return value


def decode(body: bytes) -> dict[str, Any]:
    """The JSON-shaped object in a Kubernetes protobuf body (any kind in protobuf_schema.KINDS)."""
    api_version, kind, raw, encoding = _envelope(body)
    if encoding:
        raise BadRequest(f'protobuf body: contentEncoding "{encoding}" is not supported; send it unencoded')
    msg = _KIND_MESSAGES.get((api_version, kind))
    if msg is None:
        from nbkube.apiserver.resources import UnsupportedMediaType

        raise UnsupportedMediaType(
            f"nbkube has no protobuf schema for {kind or 'an empty kind'} in {api_version or 'no version'}; "
            "send JSON (e.g. kubectl create -f MANIFEST)"
        )
    return {"apiVersion": api_version, "kind": kind, **_message(raw, msg)}


# -- encoding ----------------------------------------------------------------------------------------


def _put_varint(out: bytearray, n: int) -> None:
    if 0 <= n < 0x80:
        out.append(n)
        return
    n &= _U64
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _put_bytes(out: bytearray, number: int, data: bytes) -> None:
    _put_varint(out, number << 3 | 2)
    _put_varint(out, len(data))
    out += data


_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def _parse_time(value: Any, where: str) -> tuple[int, int]:
    if not isinstance(value, str):
        raise NotEncodable(f"{where}: {value!r} is not an RFC 3339 time")
    parsed = _parse_rfc3339(value)
    if parsed is None:
        raise NotEncodable(f"{where}: {value!r} is not an RFC 3339 time")
    return parsed


@functools.lru_cache(maxsize=4096)
def _parse_rfc3339(value: str) -> tuple[int, int] | None:
    m = _TIME.match(value)
    if m is None:
        return None
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        t = _dt.datetime.fromisoformat(m.group(1) + zone)
    except ValueError:  # a month 13, a February 30th
        return None
    return int(t.timestamp()), int((m.group(2) or "0").ljust(9, "0"))


def _parse_duration(value: Any, where: str) -> int:
    text = value if isinstance(value, str) else ""
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    parts = _DURATION_PART.findall(body)
    if body == "0":
        return 0
    if not parts or "".join(a + b for a, b in parts) != body:
        raise NotEncodable(f"{where}: {value!r} is not a duration")
    return sign * int(sum(float(n) * _DURATION_UNITS[u] for n, u in parts))


def _special_bytes(kind: str, value: Any, where: str) -> bytes:
    out = bytearray()
    if kind in ("Time", "MicroTime"):
        seconds, nanos = _parse_time(value, where)
        _put_varint(out, 8)
        _put_varint(out, seconds)
        if kind == "MicroTime" and nanos:
            _put_varint(out, 16)
            _put_varint(out, nanos)
    elif kind == "Quantity":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise NotEncodable(f"{where}: {value!r} is not a quantity")
        _put_bytes(out, 1, str(value).encode())
    elif kind == "IntOrString":
        if isinstance(value, str):
            _put_varint(out, 8)
            _put_varint(out, 1)
            _put_bytes(out, 3, value.encode())
        elif isinstance(value, int) and not isinstance(value, bool):
            _put_varint(out, 8)
            _put_varint(out, 0)
            _put_varint(out, 16)
            _put_varint(out, value)
        else:
            raise NotEncodable(f"{where}: {value!r} is neither an integer nor a string")
    elif kind == "StringList":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise NotEncodable(f"{where}: not a list of strings")
        for v in value:
            _put_bytes(out, 1, v.encode())
    elif kind == "Duration":
        _put_varint(out, 8)
        _put_varint(out, _parse_duration(value, where))
    elif kind == "RawExtension" and isinstance(value, dict):
        try:
            _put_bytes(out, 1, encode(value))
        except NotEncodable:
            _put_bytes(out, 1, json.dumps(value, separators=(",", ":")).encode())
    else:  # FieldsV1, and a RawExtension that is not an object
        _put_bytes(out, 1, json.dumps(value, separators=(",", ":")).encode())
    return bytes(out)


def _put_value(out: bytearray, f: _Field, number: int, value: Any, where: str) -> None:
    if f.message is not None:
        if not isinstance(value, dict):
            raise NotEncodable(f"{where}: not an object")
        _put_bytes(out, number, _message_bytes(value, f.message, where))
        return
    kind = f.kind
    if kind == "string":
        if not isinstance(value, str):
            raise NotEncodable(f"{where}: {value!r} is not a string")
        _put_bytes(out, number, value.encode())
    elif kind == "bool":
        if not isinstance(value, bool):
            raise NotEncodable(f"{where}: {value!r} is not a boolean")
        _put_varint(out, number << 3)
        out.append(1 if value else 0)
    elif kind in ("int32", "int64", "uint32", "uint64"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise NotEncodable(f"{where}: {value!r} is not an integer")
        _put_varint(out, number << 3)
        _put_varint(out, value)
    elif kind == "bytes":
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise NotEncodable(f"{where}: not base64") from None
        _put_bytes(out, number, data)
    elif kind in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise NotEncodable(f"{where}: {value!r} is not a number")
        if kind == "double":
            _put_varint(out, number << 3 | 1)
            out += struct.pack("<d", value)
        else:
            _put_varint(out, number << 3 | 5)
            out += struct.pack("<f", value)
    else:
        _put_bytes(out, number, _special_bytes(kind, value, where))


def _message_bytes(obj: dict[str, Any], msg: _Message, where: str) -> bytes:
    out = bytearray()
    by_name = msg.by_name
    embedded: dict[int, dict[str, Any]] = {}
    for key, value in obj.items():
        if value is None:
            continue
        f = by_name.get(key)
        if f is None or f.card == 3:
            holder = msg.inline.get(key)
            if holder is not None:
                embedded.setdefault(holder.number, {})[key] = value
                continue
            if key in ("apiVersion", "kind"):  # the TypeMeta of an embedded object (a list's items)
                continue
            raise NotEncodable(f"{msg.name} has no field {key} ({where})")
        card = f.card
        if card == 0:
            # the common cases first, without a call: strings and messages
            if f.kind == "string" and type(value) is str:
                data = value.encode()
                out += f.key
                _put_varint(out, len(data))
                out += data
            elif f.message is not None and type(value) is dict:
                data = _message_bytes(value, f.message, where)
                out += f.key
                _put_varint(out, len(data))
                out += data
            else:
                _put_value(out, f, f.number, value, f.where)
        elif card == 1:
            if not isinstance(value, list):
                raise NotEncodable(f"{f.where}: not a list")
            for item in value:
                _put_value(out, f, f.number, item, f.where)
        else:
            if not isinstance(value, dict):
                raise NotEncodable(f"{f.where}: not a map")
            for k, v in value.items():
                entry = bytearray(b"\n")  # field 1, length-delimited: the key
                data = str(k).encode()
                _put_varint(entry, len(data))
                entry += data
                if v is not None:
                    _put_value(entry, f, 2, v, f.where)
                out += f.key
                _put_varint(out, len(entry))
                out += entry
    for number, fields in embedded.items():
        holder = msg.by_number[number]
        assert holder.message is not None
        _put_bytes(out, number, _message_bytes(fields, holder.message, where))
    return bytes(out)


def encode(obj: dict[str, Any]) -> bytes:
    """`obj` (with apiVersion and kind) as a Kubernetes protobuf body; NotEncodable if the schema
    lacks its kind or one of its fields."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    msg = _KIND_MESSAGES.get((api_version, kind)) if isinstance(api_version, str) and isinstance(kind, str) else None
    if msg is None:
        raise NotEncodable(f"no protobuf schema for {kind} in {api_version}")
    assert isinstance(api_version, str) and isinstance(kind, str)
    type_meta = bytearray()
    _put_bytes(type_meta, 1, api_version.encode())
    _put_bytes(type_meta, 2, kind.encode())
    out = bytearray(MAGIC)
    _put_bytes(out, 1, bytes(type_meta))
    _put_bytes(out, 2, _message_bytes(obj, msg, kind))
    _put_bytes(out, 3, b"")  # contentEncoding and contentType, empty as upstream writes them
    _put_bytes(out, 4, b"")
    return bytes(out)


def encode_watch_event(event: dict[str, Any]) -> bytes:
    """One frame of a protobuf watch: a 4-byte big-endian length, then a bare meta.v1.WatchEvent
    (no envelope) whose object is the enveloped object, as kube-apiserver frames it."""
    out = bytearray()
    _put_bytes(out, 1, str(event.get("type", "")).encode())
    _put_bytes(out, 2, _special_bytes("RawExtension", event.get("object"), "WatchEvent.object"))
    return len(out).to_bytes(4, "big") + bytes(out)


_MESSAGES = _compile()
_KIND_MESSAGES = {key: _MESSAGES[name] for key, name in KINDS.items()}


# -- content negotiation -----------------------------------------------------------------------------


def negotiate(accept: str) -> tuple[bool, bool]:
    """(protobuf preferred, JSON acceptable) for an Accept header: the highest-q media range nbkube
    can produce wins, the earlier on a tie; protobuf ranges asking for another shape (`as=Table`)
    are not ones nbkube produces (tables are JSON)."""
    best_proto = best_json = -1.0
    proto_pos = json_pos = 0
    for pos, part in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        shaped = False
        for p in params:
            key, _, val = p.partition("=")
            if key.strip() == "q":
                try:
                    q = float(val)
                except ValueError:
                    q = 0.0
            elif key.strip() == "as":
                shaped = True
        media = media.lower()
        if media == CONTENT_TYPE and not shaped and q > best_proto:
            best_proto, proto_pos = q, pos
        elif media in ("application/json", "application/*", "*/*", "") and q > best_json:
            best_json, json_pos = q, pos
    if not accept.strip():
        return False, True
    proto = best_proto > 0 and (best_proto > best_json or (best_proto == best_json and proto_pos < json_pos))
    return proto, best_json > 0
