"""Compact JSON for stored and served objects: orjson, the standard library for what orjson refuses.

Why: every create, update, get, list and watch event passes an object through JSON once; with the
standard library that was a tenth of a registry create and most of decoding a large list. orjson
(a well-kept C/Rust extension) is about ten times faster to encode and three times faster to decode.
It refuses what Kubernetes objects never hold but a hand-made dict might (integers beyond 64 bits,
non-string keys); those fall back to `json`, whose output is the same JSON text up to float
spelling (1e+300 vs 1e300), so a value never depends on which encoder wrote it.

orjson's output bytes keep the whole buffer it wrote into (about 8 KB for a 1.7 KB pod): `dumps`
returns an exact-size copy, since encoded values are kept (the registry's recent values, watch
events), and at 150,000 pods that buffer slack was hundreds of megabytes for a copy costing a
tenth of the encode.

`loads_bounded` is the reader for bodies from the network: JSON nested deeper than any Kubernetes
object (`[[[[...]]]]` a hundred thousand times) is refused with BadRequest, since every recursive
walk above (validation, defaulting, patching) would otherwise fail with RecursionError.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from nbkube.errors import BadRequest

__all__ = ["dumps", "loads", "loads_bounded", "depth", "MAX_DEPTH"]

# Kubernetes objects nest about twenty levels (a pod template's probe's httpGet header); custom
# shapes a few more. A hundred leaves room and stays far below Python's recursion limit.
MAX_DEPTH = 100


def dumps(obj: Any) -> bytes:
    """`obj` as compact UTF-8 JSON (no spaces, non-ASCII kept); TypeError for what JSON cannot hold."""
    try:
        return memoryview(orjson.dumps(obj)).tobytes()  # exact size: see the module docstring
    except orjson.JSONEncodeError:
        pass  # big ints, non-str keys: the standard library decides (and says why, if it refuses)
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def loads(data: bytes | str) -> Any:
    """Parse JSON text (bytes or str)."""
    return orjson.loads(data)


def depth(value: Any, limit: int | None = None) -> int:
    """How deeply lists and objects nest in `value` (a scalar is 0, `[]` and `{}` are 1).

    Iterative, so it works on any input; with `limit` it stops as soon as the depth exceeds it.
    Only call it on a tree whose containers stay alive meanwhile (their ids are remembered).
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    # YAML aliases make one list appear at many places ("billion laughs"): visit each once per depth
    seen: dict[int, int] = {}
    while stack:
        node, level = stack.pop()
        if seen.get(id(node), -1) >= level:
            continue
        seen[id(node)] = level
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        if limit is not None and deepest > limit:
            return deepest
        stack.extend((child, level) for child in children if isinstance(child, dict | list))
    return deepest


def loads_bounded(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a request body: BadRequest for text that is not JSON or that nests beyond `max_depth`."""
    try:
        value = loads(raw)
    except RecursionError:  # the standard library parser recurses in C, with a guard
        raise BadRequest(f"the request body is not valid JSON: nested more than {max_depth} levels") from None
    except ValueError as exc:  # orjson.JSONDecodeError and json.JSONDecodeError both derive from it
        if "depth" in str(exc):
            raise BadRequest(
                f"the request body is not valid JSON: nested more than {max_depth} levels"
            ) from None
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if depth(value, max_depth) > max_depth:
        raise BadRequest(f"the request body is not valid JSON: nested more than {max_depth} levels")
    return value
