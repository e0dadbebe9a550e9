"""Failover: a node powered off -> every replica Ready on the other nodes, and requests failed.

Why: the article's first gap was that moving pods off a failed node took minutes. Each repetition
starts a fresh 3-node LocalCluster (profile `fast`: 1 s heartbeat, 2 s grace, 0 s toleration),
applies the rootless web ReplicationController (5 replicas of busybox httpd) and its NodePort
Service, waits for all 5 Ready, then runs `nbkube.experiments.failover` on the node with most
replicas: the node is powered off (its agent and pods stop at once) while a probe sends requests
through the Service, until all 5 replicas are Ready elsewhere. On `sim` nodes there is nothing to
probe, so only the time is reported. Runtimes: sim and process always, docker when root and a
Docker engine are there.

Baseline: Docker Swarm declares a node down only after 3 missed 5 s heartbeats (its defaults), so
~15 s pass before its tasks are even rescheduled: a published lower bound, not a measurement. A
measured Swarm failover needs a multi-node swarm, one Docker engine per node (a single engine is one
swarm node, and stopping it stops the manager too); extra engines would have to run in network
namespaces of their own, each with its own data root and a copy of the image, which this benchmark
does not build, so the row says `published`.

Each wait is bounded (the replicas Ready before the kill, and the failover itself), with bounds far
above the seconds a failover takes so that a busy machine slows the figure instead of failing the
run; when a bound is still hit, the error says which phase stalled, whether surviving nodes were
marked NotReady (late heartbeats under load) and the load average.

    python benchmarks/failover.py [--repeat 5] [--runtime sim,process,docker]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from common import Row, docker_available

from nbkube import examples
from nbkube.cluster import LocalCluster
from nbkube.experiments import failover
from nbkube.experiments.results import ExperimentTimeout

SWARM_DOWN_S = 15.0
SWARM_SOURCE = (
    "moby/swarmkit manager/dispatcher/dispatcher.go defaults: heartbeat period 5 s x grace multiplier 3 "
    "(`docker swarm init --dispatcher-heartbeat`, default 5s); a lower bound, no measured figure is published"
)
REPLICAS = 5
# seconds allowed for one failover (a few seconds when the machine is quiet) and for the replicas to
# be Ready before it; the harness's own limit for the whole benchmark (benchmarks/run.py) bounds the sum
FAILOVER_WAIT, FAILOVER_WAIT_QUICK = 180.0, 60.0
READY_WAIT = 180.0


def _summary_value(summary: Any, prefix: str) -> float:
    match = summary[summary["metric"].str.startswith(prefix)]
    if not len(match):
        raise RuntimeError(f"failover summary has no {prefix!r} row: {summary.to_string()}")
    value = match["value"].iloc[0]
    if value is None or value != value:
        raise RuntimeError(f"failover: {prefix} did not happen")
    return float(value)


def _stalled(exc: ExperimentTimeout, victim: str) -> str:
    """Where a failover that ran out of time stopped: its phases so far, which nodes the control
    plane marked NotReady (a survivor among them means heartbeats were late, not the victim's
    failover slow), and the load average, so a failure on a busy machine explains itself."""
    parts = []
    if exc.result is not None:
        df = exc.result.df
        summary = exc.result.summary
        parts.append(
            "; ".join(f"{m} = {v}" for m, v in zip(summary["metric"], summary["value"], strict=True))
        )
        ev = df[(df["source"] == "event") & (df["reason"] == "NodeNotReady")]
        others = sorted(set(map(str, ev["name"])) - {victim})
        parts.append(f"surviving nodes marked NotReady: {', '.join(others) or 'none'}")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return "; ".join([*parts, f"load average {load} on {os.cpu_count()} cores"])


def one(runtime: str, timeout: float) -> tuple[float, float | None]:
    """(seconds until all replicas Ready elsewhere, failed requests or None without a probe)."""
    with (
        tempfile.TemporaryDirectory(prefix="nbkube-bench-fo-") as data,
        LocalCluster(nodes=3, runtime=runtime, store="memory", profile="fast", data_dir=data) as cluster,
    ):
        cluster.apply(examples.path("rootless/web-rc.yaml"))
        probe = None
        if runtime != "sim":
            cluster.apply(examples.path("rootless/web-service.yaml"))
            probe = "web-http-service"
        cluster.experiments.wait_ready("app=web", REPLICAS, timeout=READY_WAIT)
        pods = cluster.api.list("Pod", "default", label_selector="app=web")[0]
        counts: dict[str, int] = {}
        for p in pods:
            node = str(p["spec"].get("nodeName"))
            counts[node] = counts.get(node, 0) + 1
        victim = max(counts, key=lambda k: counts[k])
        try:
            res = failover(cluster, victim, probe, controller="rc/web-test-controller", timeout=timeout)
        except ExperimentTimeout as exc:
            raise RuntimeError(f"{runtime}: {exc}; {_stalled(exc, victim)}") from None
        summary = res.summary
        ready = _summary_value(summary, "time to ready")
        failed = _summary_value(summary, "requests failed") if probe else None
    return ready, failed


def measure(runtimes: list[str], repeat: int, timeout: float) -> dict[str, list[tuple[float, float | None]]]:
    return {rt: [one(rt, timeout) for _ in range(repeat)] for rt in runtimes}


def rows(quick: bool = False) -> list[Row]:
    repeat = 1 if quick else 5
    runtimes = ["sim", "process"] + (["docker"] if docker_available() else [])
    out = []
    for rt, runs in measure(runtimes, repeat, FAILOVER_WAIT_QUICK if quick else FAILOVER_WAIT).items():
        times = [r[0] for r in runs]
        note = f"runs: {', '.join(f'{t:.1f}' for t in times)} s"
        out.append(Row(f"failover, {rt} nodes: power-off -> all {REPLICAS} replicas Ready elsewhere, median",
                       statistics.median(times), "s", "Docker Swarm: node declared down (before any rescheduling)",
                       SWARM_DOWN_S, "published", SWARM_SOURCE, samples=repeat, note=note))  # fmt: skip
        if rt != "sim":  # simulated pods serve nothing, so there is nothing to probe
            failed = [int(r[1] or 0) for r in runs]
            out.append(Row(f"failover, {rt} nodes: requests failed through the Service, per run", max(failed),
                           "requests", samples=repeat,
                           note=f"worst run; all runs: {', '.join(map(str, failed))}; ~20 requests/s"))  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--runtime", default="sim,process" + (",docker" if docker_available() else ""))
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    for rt, runs in measure(args.runtime.split(","), args.repeat, FAILOVER_WAIT).items():
        print(f"{rt:8} ready elsewhere: {', '.join(f'{r[0]:.2f}' for r in runs)} s;"
              f" failed requests: {', '.join(str(r[1]) for r in runs)}")  # fmt: skip
    print(f"({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
