"""One readable line per expected failure, a traceback only for a bug.

Who calls it: every background loop that retries (informers, the controller runner and workqueue
users, the scheduler, node agent sync and heartbeat loops, the proxies). An etcd outage, a conflict
with a newer write, an object deleted between a read and a write, a full disk or a watch cancelled
at shutdown are the weather of a distributed system: an operator needs to see each cause once, with
its message, not a traceback every 100 ms. Anything else escaping a loop is a bug and keeps its
traceback. This module sits just above errors.py at the bottom of the layers so that all can use it.
"""

from __future__ import annotations

import errno
import logging
import sys
import threading
import time
from typing import Any

from nbkube.errors import AlreadyExists, Conflict, Expired, NotFound, StoreUnavailable

__all__ = ["transient_cause", "log_failure", "show_logs", "RATE_WINDOW"]

RATE_WINDOW = 30.0  # seconds: one line per (logger, what, cause) in this window

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def transient_cause(exc: BaseException) -> str | None:
    """The name of an expected, transient failure (None: a bug, or nothing we know to be transient)."""
    if isinstance(exc, StoreUnavailable):
        return "store unavailable"
    if isinstance(exc, Conflict):
        return "conflict"
    if isinstance(exc, NotFound):
        return "not found"
    if isinstance(exc, AlreadyExists):
        return "already exists"
    if isinstance(exc, Expired):
        return "expired"
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        return "disk full"
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return "connection"
    return None


class _Limiter:
    """Per-key: the first occurrence passes, then at most one per window, counting what it held back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str, str], tuple[float, int]] = {}

    def admit(self, key: tuple[str, str, str], window: float) -> int | None:
        """None: suppress; else how many were suppressed since the last line."""
        now = time.monotonic()
        with self._lock:
            last, held = self._last.get(key, (-1e18, 0))
            if now - last < window:
                self._last[key] = (last, held + 1)
                return None
            self._last[key] = (now, 0)
            if len(self._last) > 4096:  # keys carry no object names, but bound it anyway
                self._last.clear()
            return held


_limiter = _Limiter()


def log_failure(
    logger: logging.Logger,
    what: str,
    exc: BaseException,
    *,
    detail: str = "",
    level: int = logging.WARNING,
    window: float = RATE_WINDOW,
) -> None:
    """Log that `what` (a short, fixed description: "Pod informer: list/watch", not one per object)
    failed with `exc`: one line with the cause when it is transient, at most one per `window` per
    (logger, what, cause); otherwise an error with the traceback. `detail` (the object's key, say)
    is printed but does not count toward the limit."""
    about = f"{what} ({detail})" if detail else what
    cause = transient_cause(exc)
    if cause is None:
        logger.error("%s failed: %s: %s", about, type(exc).__name__, exc, exc_info=exc)
        return
    held = _limiter.admit((logger.name, what, cause), window)
    if held is None:
        return
    more = f" [{held} more like it since the last line]" if held else ""
    logger.log(level, "%s failed (%s): %s%s", about, cause, exc, more)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of the record (a test's capture, a redirect)."""

    def __init__(self, level: int) -> None:
        logging.Handler.__init__(self, level)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def show_logs(level: int | str = logging.WARNING) -> logging.Handler:
    """Print nbkube's log lines of `level` and above on stderr.

    The `nbkube` command calls it; in a notebook nothing of nbkube's background threads reaches a
    cell's output (nbkube/__init__.py gives its logger a NullHandler, as a library should) until
    the user calls this (or configures `logging` themselves). Calling it again changes the level."""
    logger = logging.getLogger("nbkube")
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = next((h for h in logger.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler(numeric)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    handler.setLevel(numeric)
    if logger.getEffectiveLevel() > numeric:  # only ever lowered: what others asked for stays
        logger.setLevel(numeric)
    return handler
