"""rfc3339: the cached whole-second text gives the same timestamps as datetime's own formatting."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from nbkube.clock import rfc3339


def _by_datetime(ts: float, micro: bool) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ"
    )


def test_rfc3339_matches_datetime_with_and_without_microseconds() -> None:
    rnd = random.Random(7)
    instants = [0.0, 1.0, 1_700_000_000.0, 1_700_000_000.5, 1_700_000_000.9999995, 1_700_000_000.9999994]
    for _ in range(20_000):
        second = rnd.choice([0, 86_399, 1_700_000_000, 2**31])
        # whole microseconds and the half-microsecond boundaries either way, where rounding decides
        micros = rnd.randint(0, 999_999)
        instants.append(second + micros / 1e6 + rnd.choice([0.0, 5e-7, -5e-7, 4.9e-7, rnd.random() * 1e-6]))
        instants.append(second + rnd.random() * 2)
    for ts in instants:
        if ts < 0:
            continue
        for micro in (True, False):
            assert rfc3339(ts, micro) == _by_datetime(ts, micro), (ts, micro)
