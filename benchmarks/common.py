"""What every benchmark shares: the Row a figure is reported as, percentiles, and skipping.

Why: `benchmarks/run.py` runs every benchmark and writes one JSON row per figure, and
`benchmarks/table.py` renders the README's table from that JSON; both need one shape for a figure
(its value, its baseline and where that baseline comes from), so each benchmark module returns
`Row`s from its `rows(quick)` function instead of printing its own table.

A baseline is either measured in the same run (`same-run`) or a published figure (`published`,
with `source` naming where it was published); a figure with neither says `none`.
"""

from __future__ import annotations

import math
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

BASELINE_KINDS = ("same-run", "published", "none")


class Skip(Exception):
    """A benchmark that cannot run here (no root, no Docker): the reason is reported, never hidden."""


@dataclass
class Row:
    """One figure: `value` in `unit`, beside `baseline_value` (same unit) of `baseline`."""

    name: str
    value: float | None
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    baseline_kind: str = "none"
    source: str = ""
    ratio: float | None = None  # value / baseline_value unless given
    samples: int | None = None  # how many measurements the value summarises
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.baseline_kind not in BASELINE_KINDS:
            raise ValueError(f"{self.name}: baseline_kind must be one of {BASELINE_KINDS}")
        if self.baseline_kind == "published" and not self.source:
            raise ValueError(f"{self.name}: a published baseline needs its source")
        if self.baseline_kind == "none" and self.baseline_value is not None:
            raise ValueError(f"{self.name}: a baseline value needs a baseline_kind")
        if self.ratio is None and self.value is not None and self.baseline_value:
            self.ratio = self.value / self.baseline_value

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("value", "baseline_value", "ratio"):
            v = out[key]
            if isinstance(v, float) and not math.isfinite(v):
                out[key] = None
        return out


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank q-th percentile (0 < q <= 100): with fewer than 100 samples p99 is the
    maximum, which `pct_label` says."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def pct_label(q: int, n: int) -> str:
    """'p99' or, when n is too small for it to be anything else, 'p99 (= max of 20)'."""
    if q == 99 and n < 100:
        return f"p99 (= max of {n})"
    return f"p{q}"


def machine() -> dict[str, Any]:
    """The machine a run was on: cores, memory, kernel, Python."""
    mem_kib = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
    }


def require_root() -> None:
    if os.geteuid() != 0:
        raise Skip("needs root")


def docker_available() -> bool:
    """True when this process is root and a Docker engine answers."""
    if os.geteuid() != 0:
        return False
    try:
        import docker  # type: ignore[import-untyped,unused-ignore]

        client = docker.from_env(timeout=10)
        try:
            client.ping()
        finally:
            client.close()
    except Exception:  # any failure to reach the engine means "no Docker here"
        return False
    return True


def require_docker() -> None:
    if os.geteuid() != 0:
        raise Skip("needs root and a Docker engine")
    if not docker_available():
        raise Skip("no Docker engine answers")


def rss_mib(pid: int | str = "self") -> float:
    """Resident set size of process `pid` in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise OSError(f"no VmRSS for process {pid}")


def print_rows(rows: list[Row]) -> None:
    """A benchmark run by hand prints its rows as `benchmarks/run.py` does: value, baseline, ratio."""
    for row in rows:
        value = "n/a" if row.value is None else f"{row.value:.4g} {row.unit}"
        line = f"{row.name}: {value}"
        if row.baseline_value is not None:
            line += f"  vs {row.baseline} {row.baseline_value:.4g} {row.unit} ({row.baseline_kind})"
        if row.ratio is not None:
            line += f"  ratio {row.ratio:.2f}"
        if row.samples is not None:
            line += f"  [{row.samples} samples]"
        print(line)
        if row.note:
            print(f"    {row.note}")


# Docker nodes are named machine-wide (nbkube/node/kit.py claims each name): a cluster another
# program on the machine runs with the same node names makes LocalCluster refuse to start.
NODE_NAME_TAKEN = "already runs on this machine"


def start_cluster(wait: float = 300.0, **kwargs: Any) -> Any:
    """`LocalCluster(**kwargs)`, waiting (bounded by `wait` seconds) while another cluster on the
    machine holds the same Docker node names: a busy shared machine delays the benchmark instead
    of failing it. Each wait says once who holds the names; anything else is raised at once."""
    import time

    from nbkube.cluster import LocalCluster
    from nbkube.errors import BadRequest

    deadline = time.monotonic() + wait
    said = ""
    while True:
        try:
            return LocalCluster(**kwargs)
        except BadRequest as exc:
            if NODE_NAME_TAKEN not in str(exc) or time.monotonic() > deadline:
                raise
            if str(exc) != said:
                said = str(exc)
                print(f"waiting up to {wait:g} s for the node names: {exc}", file=sys.stderr, flush=True)
            time.sleep(2.0)
