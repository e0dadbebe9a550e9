"""Int-or-percent values (`maxSurge: 25%`, `maxUnavailable: 1`) and how Kubernetes rounds them.

Validation checks their shape; the deployment controller turns them into pod counts with
`resolve_int_or_percent` (round up for maxSurge, down for maxUnavailable, as Kubernetes does).
"""

from __future__ import annotations

import re

_PERCENT_RE = re.compile(r"^(\d+)%$")


def is_percent(value: object) -> bool:
    return isinstance(value, str) and _PERCENT_RE.match(value) is not None


def percent_of(value: str) -> int:
    m = _PERCENT_RE.match(value)
    if m is None:
        raise ValueError(f"invalid value {value!r}: must be an integer or a percentage like '25%'")
    return int(m.group(1))


def resolve_int_or_percent(value: int | str | None, total: int, round_up: bool) -> int:
    """The count `value` means out of `total`: ints as they are, `N%` of total rounded as asked."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"invalid value {value!r}: must be an integer or a percentage like '25%'")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        pct = percent_of(value)
        scaled = pct * total
        return -(-scaled // 100) if round_up else scaled // 100
    raise ValueError(f"invalid value {value!r}: must be an integer or a percentage like '25%'")
