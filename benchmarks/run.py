"""Run every benchmark in one command, each in its own process under a time limit, and collect rows.

Why: figures measured by hand, one script at a time, drift away from the table that quotes them.
Here each benchmark module's `rows(quick)` runs in a child process of its own (a clean heap for the
memory figures, and a hang is killed: SIGTERM to its process group, then SIGKILL), and every figure
comes back as one JSON row with the machine it ran on and the load average before and after.
`benchmarks/table.py` turns that JSON into the README's table.

    python benchmarks/run.py [--quick] [--json FILE] [--only NAME ...] [--list]

`--quick` runs everything at small sizes (each row says how many samples it summarises); a
benchmark that cannot run here (no root, no Docker) reports why as a skipped row. The exit code is
1 when a benchmark failed or timed out, or (with `--require-all`, or NBKUBE_REQUIRE_DOCKER=1 as
CI sets) when one was skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


@dataclass(frozen=True)
class Bench:
    name: str  # the module in benchmarks/ with a rows(quick) function
    quick_timeout: float  # seconds
    full_timeout: float


# In the order they run. A quick limit is several times what the benchmark's quick sizes take on a
# busy 2-core machine (docs/benchmarks.md has the quick run's measured times): it stops a hang, not a
# slow run. A full limit covers the sum of the benchmark's own bounded waits.
BENCHES = [
    Bench("store", 30, 600),
    Bench("scheduler", 30, 900),
    Bench("control_plane", 30, 900),
    Bench("rbac", 15, 300),
    Bench("api_auth", 15, 300),
    Bench("api_load", 30, 600),
    Bench("apply", 15, 300),
    Bench("protobuf", 15, 120),
    Bench("notebook", 15, 300),
    Bench("notebook_start", 15, 300),
    Bench("userspace_proxy", 15, 120),
    Bench("dns", 15, 120),
    Bench("proxy", 20, 900),
    Bench("firewall", 15, 300),
    Bench("pod_start", 30, 300),
    Bench("pod_start_e2e", 60, 2400),  # full: 100 pods one at a time on each runtime, and baselines
    Bench("exec", 45, 600),
    Bench("service_throughput", 30, 300),
    Bench("replicas", 45, 900),
    Bench("daemonset", 15, 300),
    Bench("statefulset", 15, 600),
    Bench("jobs", 30, 900),
    Bench("scale", 30, 1800),
    Bench("failover", 90, 3600),  # full: 5 fresh clusters on each of 3 runtimes
    Bench("hpa", 150, 900),  # upstream's 15 s metrics and sync periods take half a minute at least
    Bench("recovery", 60, 900),
]
BY_NAME = {b.name: b for b in BENCHES}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def child(name: str, quick: bool, out: str) -> int:
    """In the child process: run one benchmark, write its rows (or its skip reason) to `out`."""
    sys.path[:0] = [ROOT, HERE]
    from common import Skip

    # SIGTERM (the parent's time limit) unwinds like Ctrl-C, so the benchmark's cleanup runs
    signal.signal(signal.SIGTERM, _interrupted)
    module = importlib.import_module(name)
    try:
        rows = module.rows(quick=quick)
        result: dict[str, Any] = {"rows": [r.as_dict() for r in rows]}
    except Skip as exc:
        result = {"skipped": str(exc)}
    with open(out, "w") as f:
        json.dump(result, f)
    return 0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End a benchmark's process group: SIGTERM (its cleanup runs), SIGKILL after 15 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_one(bench: Bench, quick: bool, timeout: float) -> dict[str, Any]:
    """Run `bench` in a child process; its result with timings and load averages."""
    with tempfile.NamedTemporaryFile("r", suffix=".json", prefix=f"nbkube-bench-{bench.name}-") as tmp:
        argv = [sys.executable, os.path.abspath(__file__), "--child", bench.name, "--out", tmp.name]
        if quick:
            argv.append("--quick")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
        load_start, t0 = load_average(), time.monotonic()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True)
        status = "ok"
        try:
            code = proc.wait(timeout)
            if code != 0:
                status = f"failed (exit code {code})"
        except subprocess.TimeoutExpired:
            status = f"timed out after {timeout:g} s"
            _stop(proc)
        except BaseException:  # interrupted ourselves (Ctrl-C, an outer timeout): the child goes too
            _stop(proc)
            raise
        seconds = round(time.monotonic() - t0, 1)
        load_end = load_average()
        body: dict[str, Any] = {}
        if status == "ok":
            text = tmp.read()
            body = json.loads(text) if text else {}
            if not body:
                status = "failed (no result written)"
    return {"benchmark": bench.name, "status": status, "seconds": seconds,
            "load_start": load_start, "load_end": load_end, **body}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: everything in under 5 minutes")
    ap.add_argument("--json", metavar="FILE", help="write every row (and the machine) to FILE")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    ap.add_argument("--require-all", action="store_true", help="a skipped benchmark is a failure")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child, args.quick, args.out)
    if args.list:
        for b in BENCHES:
            print(f"{b.name:20} quick limit {b.quick_timeout:>4.0f} s, full {b.full_timeout:>5.0f} s")
        return 0
    unknown = [n for n in args.only or [] if n not in BY_NAME]
    if unknown:
        ap.error(f"--only: no benchmark named {', '.join(unknown)} (see --list)")
    chosen = [b for b in BENCHES if not args.only or b.name in args.only]
    require_all = args.require_all or os.environ.get("NBKUBE_REQUIRE_DOCKER") == "1"

    sys.path[:0] = [ROOT, HERE]
    from common import machine

    # an outer `timeout` (as in CI) sends SIGTERM: unwind, so the running benchmark is stopped too
    signal.signal(signal.SIGTERM, _interrupted)

    started = time.time()
    results = []
    for bench in chosen:
        timeout = bench.quick_timeout if args.quick else bench.full_timeout
        print(f"== {bench.name} (limit {timeout:g} s)", flush=True)
        res = run_one(bench, args.quick, timeout)
        results.append(res)
        if res.get("skipped"):
            print(f"   skipped: {res['skipped']}", flush=True)
        elif res["status"] != "ok":
            print(f"   {res['status']}", flush=True)
        for row in res.get("rows", []):
            ratio = f"  ratio {row['ratio']:.2f}" if row.get("ratio") is not None else ""
            value = "n/a" if row["value"] is None else f"{row['value']:.4g}"
            print(f"   {row['name']}: {value} {row['unit']}{ratio}", flush=True)
        print(f"   ({res['seconds']} s, load {res['load_start'][0]} -> {res['load_end'][0]})", flush=True)

    info = machine()
    rows = []
    for res in results:
        for row in res.get("rows", []):
            rows.append({"benchmark": res["benchmark"], **row, "machine": info,
                         "load_start": res["load_start"], "load_end": res["load_end"]})  # fmt: skip
    report = {
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": info,
        "benchmarks": [{k: v for k, v in r.items() if k != "rows"} for r in results],
        "rows": rows,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
    failed = [r["benchmark"] for r in results if r["status"] != "ok"]
    skipped = [r["benchmark"] for r in results if r.get("skipped")]
    print(f"{len(rows)} rows from {len(results)} benchmarks in {report['seconds']} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    if skipped:
        print(f"skipped: {', '.join(skipped)}", file=sys.stderr)
    return 1 if failed or (require_all and skipped) else 0


if __name__ == "__main__":
    sys.exit(main())
