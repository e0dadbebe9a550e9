"""A collector of FieldErrors with typed field accessors, shared by the per-kind validators.

Manifests come from users, so any field may be missing, null or of the wrong type. Each accessor
here reads one field, records `required` / `must be an integer, got ...` under the field's full
path when it is wrong, and returns the value only when it has the expected type, so the validators
can go on checking what they can without ever raising on a malformed object.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from nbkube.errors import FieldError


def join(path: str, key: str | int) -> str:
    """`join("spec", "ports")` -> `spec.ports`; `join("spec.ports", 0)` -> `spec.ports[0]`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def show(value: Any) -> str:
    """A value as it appears in an error message (JSON, truncated when long)."""
    text = json.dumps(value, default=str, separators=(",", ":"))
    return text if len(text) <= 80 else text[:77] + "..."


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# Kubernetes types every integer field as int32 or int64 and its JSON decoder refuses a value that
# does not fit (and any number with a fraction or exponent): so do the getters below. Python ints are
# unbounded, and a value beyond 64 bits would not even survive the store's JSON round trip.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_LEAVES = (str, float, bool, type(None))


def ints_fit_int64(value: Any) -> bool:
    """True when every integer anywhere in `value` fits int64 (and it holds only JSON types).

    The quick walk every write's validation takes before the one that names fields: it builds no
    field path (a quarter of the cost for a pod), and almost every object passes. False sends the
    caller to its exact walk, which also sees any type this one does not know.
    """
    t = type(value)
    if t is dict or t is list:
        for v in value.values() if t is dict else value:
            if type(v) not in _LEAVES and not ints_fit_int64(v):
                return False
        return True
    if t is int:
        return INT64_MIN <= value <= INT64_MAX
    return t in _LEAVES


class Errors(list[FieldError]):
    """The FieldErrors found so far, plus typed getters that add to them."""

    def add(self, path: str, message: str) -> None:
        self.append(FieldError(path, message))

    def extend_messages(self, path: str, value: Any, messages: Iterable[str]) -> bool:
        """Add `Invalid value: <value>: <msg>` for each message; True when there was none."""
        before = len(self)
        for msg in messages:
            self.add(path, f"Invalid value: {show(value)}: {msg}")
        return len(self) == before

    def required(self, path: str) -> None:
        self.add(path, "required")

    def invalid(self, path: str, value: Any, detail: str) -> None:
        self.add(path, f"Invalid value: {show(value)}: {detail}")

    def unsupported(self, path: str, value: Any, supported: Iterable[str]) -> None:
        choices = ", ".join(f'"{s}"' for s in supported)
        self.add(path, f"Unsupported value: {show(value)}: supported values: {choices}")

    def duplicate(self, path: str, value: Any) -> None:
        self.add(path, f"Duplicate value: {show(value)}")

    def forbidden(self, path: str, detail: str) -> None:
        self.add(path, f"Forbidden: {detail}")

    def wrong_type(self, path: str, expected: str, value: Any) -> None:
        self.add(path, f"must be {expected}, got {type_name(value)} {show(value)}")

    # --- typed getters: return the value when present and well-typed, else None -----------------
    # The registry validates every object it writes, so these run a few dozen times per write: each
    # does one dict lookup and one type check, and builds the field's path only to report an error.

    def _reject(self, value: Any, key: str, path: str, expected: str, required: bool) -> None:
        """Record why `value` (read from `key` under `path`) is unusable: missing or mistyped."""
        if value is None:
            if required:
                self.required(join(path, key))
        else:
            self.wrong_type(join(path, key), expected, value)

    def _get(
        self,
        parent: dict[str, Any],
        key: str,
        path: str,
        ok: Callable[[Any], bool],
        expected: str,
        required: bool,
    ) -> Any:
        value = parent.get(key)
        if value is not None and ok(value):
            return value
        if value is not None or required:
            self._reject(value, key, path, expected, required)
        return None

    def mapping(
        self, parent: dict[str, Any], key: str, path: str, required: bool = False
    ) -> dict[str, Any] | None:
        value = parent.get(key)
        if isinstance(value, dict):
            return value
        if value is not None or required:
            self._reject(value, key, path, "a mapping", required)
        return None

    def sequence(
        self, parent: dict[str, Any], key: str, path: str, required: bool = False
    ) -> list[Any] | None:
        value = parent.get(key)
        if isinstance(value, list):
            return value
        if value is not None or required:
            self._reject(value, key, path, "a list", required)
        return None

    def string(
        self, parent: dict[str, Any], key: str, path: str, required: bool = False, allow_empty: bool = True
    ) -> str | None:
        value = parent.get(key)
        if not isinstance(value, str):
            if value is not None or required:
                self._reject(value, key, path, "a string", required)
            return None
        if value == "" and (required or not allow_empty):
            self.required(join(path, key))
            return None
        return value

    def optional_strings(self, parent: dict[str, Any], keys: tuple[str, ...], path: str) -> None:
        """`string(parent, key, path)` of each key, in one loop. The usual case (every field a
        string or absent) costs a lookup and a type test per key, not a method call: an Event
        has a score of such fields, and every pod's status write records two Events."""
        for key in keys:
            value = parent.get(key)
            if value is not None and type(value) is not str:
                self.string(parent, key, path)  # a str subclass passes; anything else is reported

    def boolean(self, parent: dict[str, Any], key: str, path: str, required: bool = False) -> bool | None:
        value = parent.get(key)
        if isinstance(value, bool):
            return value
        if value is not None or required:
            self._reject(value, key, path, "a boolean", required)
        return None

    def integer(
        self,
        parent: dict[str, Any],
        key: str,
        path: str,
        required: bool = False,
        minimum: int | None = None,
        maximum: int | None = None,
        *,
        bits: int = 64,
    ) -> int | None:
        """An integer field of Go type int32 (`bits=32`) or int64: a bool or float is not one."""
        result: int | None = self._get(parent, key, path, is_int, "an integer", required)
        if result is None:
            return None
        full = join(path, key)
        low, high = (INT32_MIN, INT32_MAX) if bits == 32 else (INT64_MIN, INT64_MAX)
        if not low <= result <= high:
            self.invalid(full, result, f"must be a {bits}-bit integer (between {low} and {high})")
            return None
        if minimum is not None and result < minimum:
            msg = (
                "must be greater than or equal to 0"
                if minimum == 0
                else f"must be greater than or equal to {minimum}"
            )
            self.invalid(full, result, msg)
            return None
        if maximum is not None and result > maximum:
            self.invalid(full, result, f"must be less than or equal to {maximum}")
            return None
        return result

    def int32(
        self,
        parent: dict[str, Any],
        key: str,
        path: str,
        required: bool = False,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        """`integer` for a field Kubernetes types as int32 (replicas, ports, counts, probe times)."""
        return self.integer(parent, key, path, required, minimum, maximum, bits=32)

    def maps(
        self, parent: dict[str, Any], key: str, path: str, required: bool = False
    ) -> list[tuple[str, dict[str, Any]]]:
        """The items of a list of mappings, each with its path; non-mapping items are reported."""
        items = self.sequence(parent, key, path, required)
        if items is None:
            return []
        full = join(path, key)
        if required and not items:
            self.required(full)
        out = []
        for i, item in enumerate(items):
            if isinstance(item, dict):
                out.append((join(full, i), item))
            else:
                self.wrong_type(join(full, i), "a mapping", item)
        return out

    def strings(self, parent: dict[str, Any], key: str, path: str) -> list[str]:
        """A list of strings (command, args, finalizers...); wrong items are reported and skipped."""
        items = self.sequence(parent, key, path)
        out = []
        for i, item in enumerate(items or []):
            if isinstance(item, str):
                out.append(item)
            else:
                self.wrong_type(join(join(path, key), i), "a string", item)
        return out

    def string_map(self, parent: dict[str, Any], key: str, path: str) -> dict[str, str]:
        """A map of string to string (labels, annotations, data); wrong entries are reported."""
        d = self.mapping(parent, key, path)
        if not d:
            return {}
        out: dict[str, str] = {}
        for k, v in d.items():
            if not isinstance(k, str):
                self.wrong_type(join(path, key), "a mapping with string keys", k)
            elif not isinstance(v, str):
                self.wrong_type(f"{join(path, key)}[{k}]", "a string", v)
            else:
                out[k] = v
        return out

    def one_of(
        self, parent: dict[str, Any], key: str, path: str, allowed: Iterable[str], required: bool = False
    ) -> str | None:
        value = self.string(parent, key, path, required)
        allowed = tuple(allowed)
        if value is not None and value not in allowed:
            if value == "" and not required:
                return value
            self.unsupported(join(path, key), value, allowed)
            return None
        return value
