"""CPU and memory that host processes use, read from /proc, for the process runtime's metrics.

Why its own module: the node's metrics reporter (`nbkube/node/metrics.py`) needs, per container,
cumulative CPU seconds and resident memory, as the kubelet reads them from a container's cgroup.
A process-runtime container is a session (its main process calls setsid), so its cgroup's stand-in
is every live process of that session: CPU is the sum of their utime+stime plus cutime+cstime (the
children they already reaped), memory the sum of their RSS. One scan of /proc serves every
container of a sample.

`ContainerUsage` here is the runtime's raw reading; the reporter turns two readings into a rate.
"""

from __future__ import annotations

import os
from typing import NamedTuple

__all__ = ["RawUsage", "session_usage"]

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


class RawUsage(NamedTuple):
    cpu_seconds: float  # cumulative since the container started
    memory_bytes: int  # resident now


def session_usage() -> dict[int, RawUsage]:
    """Session id -> its live processes' cumulative CPU and resident memory (one /proc scan)."""
    ticks: dict[int, int] = {}
    pages: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                text = f.read()
        except OSError:
            continue  # exited between listdir and open
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) < 22:
            continue
        sid = int(fields[3])
        ticks[sid] = ticks.get(sid, 0) + sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
        pages[sid] = pages.get(sid, 0) + int(fields[21])
    return {sid: RawUsage(t / _TICKS, pages[sid] * _PAGE) for sid, t in ticks.items()}
