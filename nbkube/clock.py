"""Injectable time, so that failover and rollout logic is tested without sleeping.

Controllers, the workqueue's delayed adds, lease renewal and the node-lifecycle grace periods all
read time through a `Clock`. Production code gets `RealClock`; tests get `FakeClock` and move time
forward with `advance()`, which also wakes every thread sleeping on the fake clock.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (wall time, used for timestamps and lease expiry)."""
        ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait up to `seconds` for `event`, returning whether it was set (time per this clock)."""
        ...


class RealClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when a test calls `advance()`."""

    def __init__(self, start: float = 1_700_000_000.0):
        self._now = start
        self._mono = 0.0
        self._cond = threading.Condition()

    def now(self) -> float:
        with self._cond:
            return self._now

    def monotonic(self) -> float:
        with self._cond:
            return self._mono

    def advance(self, seconds: float) -> None:
        with self._cond:
            self._now += seconds
            self._mono += seconds
            self._cond.notify_all()

    def sleep(self, seconds: float) -> None:
        with self._cond:
            deadline = self._mono + seconds
            while self._mono < deadline:
                self._cond.wait(0.05)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        with self._cond:
            deadline = self._mono + seconds
            while not event.is_set() and self._mono < deadline:
                self._cond.wait(0.01)
            return event.is_set()


REAL_CLOCK = RealClock()


# (second, its text) of the last whole-second timestamp formatted. The registry stamps every create
# with rfc3339(now), and strftime is a tenth of a create's Python time; the text only changes once a
# second. One tuple, replaced whole, so threads never see a second paired with another's text.
_last_second: tuple[int, str] = (-1, "")


def rfc3339(ts: float, micro: bool = False) -> str:
    """Kubernetes timestamp text: `2016-02-15T10:00:00Z` (or with microseconds for event times)."""
    global _last_second
    if ts >= 0:
        second = int(ts)
        fraction = ts - second  # exact for a non-negative float, as datetime's own modf
        # datetime rounds to whole microseconds, so the last half microsecond of a second already
        # prints as the next one: leave those to the general path.
        if fraction < 0.9999994:
            cached = _last_second
            if cached[0] == second:
                text = cached[1]
            else:
                text = datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                _last_second = (second, text)
            if not micro:
                return text
            # round() halves to even, as datetime.fromtimestamp rounds its microseconds
            return f"{text[:-1]}.{round(fraction * 1e6):06d}Z"
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def timestamp_or_none(text: Any) -> float | None:
    """An object's RFC 3339 field as seconds; None when it is empty or not a timestamp (a field
    a user wrote by hand must not break a printer or a controller)."""
    if not text:
        return None
    try:
        return parse_rfc3339(str(text))
    except ValueError:
        return None
