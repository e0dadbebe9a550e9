"""Resource quantities (`cpu: 100m`, `memory: 64Mi`) parsed as Kubernetes parses them.

Validation uses these to reject malformed requests/limits and quota values; the scheduler, quota
admission and node agents use `parse_cpu`/`parse_memory` to do arithmetic on whole millicores and
bytes. Arithmetic is done in `Decimal` so that `0.1` and `100m` are exactly the same amount.
"""

from __future__ import annotations

import functools
import math
import re
from decimal import Decimal, InvalidOperation

from nbkube.errors import BadRequest

__all__ = [
    "QuantityError",
    "parse_quantity",
    "parse_decimal",
    "parse_cpu",
    "parse_memory",
    "format_cpu",
    "format_memory",
]

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY_RE = re.compile(
    r"^(?P<num>[+-]?(\d+(\.\d*)?|\.\d+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$"
)


class QuantityError(BadRequest, ValueError):
    """A quantity that does not parse; both a BadRequest (for users) and a ValueError (for callers)."""


def _bad(q: object) -> QuantityError:
    return QuantityError(
        f"invalid quantity {q!r}: must be a number with an optional suffix "
        "(n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei, or an exponent like 1e3)"
    )


def parse_decimal(q: object) -> Decimal:
    """The exact amount `q` names: an int, a float, or a string such as `100m`, `1.5Gi`, `1e3`."""
    if isinstance(q, bool):
        raise _bad(q)
    if isinstance(q, int):
        return Decimal(q)
    if isinstance(q, float):
        if not math.isfinite(q):
            raise _bad(q)
        # repr() keeps YAML's `0.1` as 0.1 rather than the binary float's long expansion
        return Decimal(repr(q))
    if not isinstance(q, str):
        raise _bad(q)
    return _parse_text(q)


# Pods of one template name the same few quantities ("10m", "16Mi") thousands of times: each text
# is parsed once (a Decimal is immutable; a bad text raises each time, errors are not cached).
@functools.lru_cache(maxsize=4096)
def _parse_text(q: str) -> Decimal:
    m = _QUANTITY_RE.match(q.strip())
    if m is None or q != q.strip():
        raise _bad(q)
    try:
        number = Decimal(m.group("num"))
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid decimals
        raise _bad(q) from exc
    suffix = m.group("suffix") or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * (Decimal(10) ** int(suffix[1:]))


def parse_quantity(q: object) -> float:
    """The amount `q` names, as a float (for display and ratios; use parse_cpu/parse_memory to add)."""
    return float(parse_decimal(q))


def _ceil(d: Decimal) -> int:
    return int(d.to_integral_value(rounding="ROUND_CEILING"))


def parse_cpu(q: object) -> int:
    """CPU in millicores: `100m` -> 100, `0.5` -> 500, `2` -> 2000 (rounded up, as Kubernetes does)."""
    return _ceil(parse_decimal(q) * 1000)


def parse_memory(q: object) -> int:
    """Memory (or any byte amount) in bytes: `64Mi` -> 67108864, `1G` -> 10**9 (rounded up)."""
    return _ceil(parse_decimal(q))


def format_cpu(millicores: int) -> str:
    """The short form Kubernetes prints: `2` for 2000 millicores, `250m` otherwise."""
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def format_memory(num_bytes: int) -> str:
    """The largest binary suffix that divides `num_bytes` exactly (`64Mi`), else plain bytes."""
    if num_bytes == 0:
        return "0"
    for suffix, factor in reversed(_BINARY.items()):
        if num_bytes % factor == 0:
            return f"{num_bytes // factor}{suffix}"
    return str(num_bytes)
