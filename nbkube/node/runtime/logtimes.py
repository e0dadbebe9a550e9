"""When each log line was written, for a log file the container's processes write themselves.

Why: the process runtime (process.py) gives a container's stdout and stderr straight to a file, so
no one sees each line go by (a relay in between would die with the node agent, and a restarted
agent adopts running containers). `kubectl logs --timestamps` and `--since` need a time per line;
so the runtime's reaper, which looks at every running container each `poll_interval`, notes when
the file has grown: a line beside the log (`<log>.times`, "SIZE EPOCH" lines) saying that the
first SIZE bytes were there at EPOCH. A line's time is that of the first note covering its end: the
moment the runtime saw it, at most one poll interval after it was written (the kubelet's CRI
logger stamps the moment it reads a line, the same idea at a finer grain). Lines not noted yet
are stamped now.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

__all__ = ["load", "note_growth", "render", "stamp_stream", "timed_lines"]


def _times_path(log_path: str) -> str:
    return log_path + ".times"


def note_growth(log_path: str, seen: int, now: float) -> int:
    """Note (size, now) when the log grew past `seen` bytes; the size now known."""
    try:
        size = os.path.getsize(log_path)
    except FileNotFoundError:
        return seen
    if size > seen:
        with open(_times_path(log_path), "a") as f:
            f.write(f"{size} {now:.6f}\n")
    return size


def load(log_path: str) -> tuple[list[int], list[float]]:
    """The notes as (sizes, times), both ascending."""
    sizes: list[int] = []
    times: list[float] = []
    with contextlib.suppress(FileNotFoundError), open(_times_path(log_path)) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit():
                sizes.append(int(parts[0]))
                times.append(float(parts[1]))
    return sizes, times


def timed_lines(
    data: bytes, start: int, notes: tuple[list[int], list[float]], now: float
) -> list[tuple[float, bytes]]:
    """`data` (read from offset `start` of the log) as (time, line) pairs."""
    sizes, times = notes
    out: list[tuple[float, bytes]] = []
    end = start
    for line in data.splitlines(keepends=True):
        end += len(line)
        i = bisect.bisect_left(sizes, end)
        out.append((times[i] if i < len(times) else now, line))
    return out


def _stamp(t: float) -> bytes:
    # RFC 3339 with nanoseconds, as `kubectl logs --timestamps` prints the kubelet's
    moment = datetime.fromtimestamp(t, tz=UTC)
    return (moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond:06d}000Z ").encode()


def render(lines: Iterable[tuple[float, bytes]], *, since: float | None, timestamps: bool) -> str:
    """The lines at or after `since`, each after its time when `timestamps`."""
    kept = [(t, line) for t, line in lines if since is None or t >= since]
    return b"".join((_stamp(t) + line) if timestamps else line for t, line in kept).decode("utf-8", "replace")


def stamp_stream(chunks: Iterator[str], first: str) -> Iterator[str]:
    """`first` (already stamped), then a followed log's new chunks with each line's start
    stamped with the time it was read."""
    if first:
        yield first
    at_start = True
    for chunk in chunks:
        t = time.time()
        out: list[str] = []
        for piece in chunk.splitlines(keepends=True):
            if at_start:
                out.append(_stamp(t).decode())
            out.append(piece)
            at_start = piece.endswith("\n")
        yield "".join(out)
