"""A Job of N completions x parallelism P on sim nodes: completions/s beside N bare pods run to completion.

Both run on the same kind of LocalCluster (3 sim nodes, in-memory store, the real scheduler, node
agents and every controller), each in a fresh cluster, and every pod's container runs
`sim.nbkube.io/run-seconds` (0.05 s here, so the figure is the control plane's, not the sleep's):

- Job: one `batch/v1` Job with `completions: N, parallelism: P`; the clock runs from its create
  until its Complete condition. The Job controller keeps P pods running, replaces each finished
  one and counts the successes;
- baseline: the same N pods (same template, restartPolicy Never) created directly by a client
  as fast as the registry takes them, from the first create until all N have Succeeded: no
  controller in the loop and no parallelism cap, so it is what the cluster can do at most.

The ratio (Job completions/s over bare pods/s) is the cost of the Job's P-at-a-time loop. The
two run in turn, `rounds` times (3), and each figure is the median of its rounds: on a shared
machine one round of either can be slowed by a neighbour.

    python benchmarks/jobs.py [--completions 1000] [--parallelism 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from common import Row  # noqa: E402

from nbkube.cluster import LocalCluster  # noqa: E402

RUN_SECONDS = "0.05"
NODES = 3


def _pod_spec() -> dict[str, Any]:
    return {
        "restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox", "command": ["true"]}],
    }


def job_time(completions: int, parallelism: int, timeout: float) -> float:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {
            "completions": completions,
            "parallelism": parallelism,
            "template": {
                "metadata": {"annotations": {"sim.nbkube.io/run-seconds": RUN_SECONDS}},
                "spec": _pod_spec(),
            },
        },
    }
    with (
        tempfile.TemporaryDirectory() as data,
        LocalCluster(nodes=NODES, runtime="sim", store="memory", data_dir=data, name="benchjob") as c,
    ):
        t0 = time.perf_counter()
        c.api.create(job)
        while time.perf_counter() - t0 < timeout:
            st = c.api.get("Job", "bench", "default").get("status") or {}
            if any(
                x.get("type") == "Complete" and x.get("status") == "True" for x in st.get("conditions") or []
            ):
                return time.perf_counter() - t0
            if any(
                x.get("type") == "Failed" and x.get("status") == "True" for x in st.get("conditions") or []
            ):
                raise RuntimeError(f"the benchmark Job failed: {st}")
            time.sleep(0.05)
    raise RuntimeError(f"Job of {completions} completions not complete within {timeout}s")


def bare_time(count: int, timeout: float) -> float:
    with (
        tempfile.TemporaryDirectory() as data,
        LocalCluster(nodes=NODES, runtime="sim", store="memory", data_dir=data, name="benchbare") as c,
    ):
        t0 = time.perf_counter()
        for i in range(count):
            c.api.create(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": f"bare-{i}",
                        "namespace": "default",
                        "labels": {"bench": "bare"},
                        "annotations": {"sim.nbkube.io/run-seconds": RUN_SECONDS},
                    },
                    "spec": _pod_spec(),
                }
            )
        while time.perf_counter() - t0 < timeout:
            pods = c.api.list("Pod", "default", label_selector="bench=bare")[0]
            if sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded") == count:
                return time.perf_counter() - t0
            time.sleep(0.1)
    raise RuntimeError(f"{count} bare pods not all Succeeded within {timeout}s")


def measure(completions: int, parallelism: int, rounds: int, timeout: float) -> tuple[float, float]:
    """Median seconds of the Job and of the bare pods, run in turn `rounds` times."""
    jobs, bares = [], []
    for _ in range(rounds):
        jobs.append(job_time(completions, parallelism, timeout))
        bares.append(bare_time(completions, timeout))
    return statistics.median(jobs), statistics.median(bares)


def rows(quick: bool = False) -> list[Row]:
    completions, parallelism = (100, 10) if quick else (1000, 50)
    rounds = 3
    job, bare = measure(completions, parallelism, rounds, 120 if quick else 900)
    return [
        Row(f"Job of {completions} completions x parallelism {parallelism}, {NODES} sim nodes (median of {rounds})",
            completions / job, "completions/s", f"{completions} bare pods created at once, run to completion",
            completions / bare, "same-run", samples=rounds,
            note=f"pods run {RUN_SECONDS} s; Job {job:.1f} s, bare pods {bare:.1f} s"),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--completions", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    job, bare = measure(args.completions, args.parallelism, args.rounds, args.timeout)
    print(
        f"machine: {os.cpu_count()} cores; {NODES} sim nodes, pods run {RUN_SECONDS} s; median of {args.rounds}"
    )
    print(
        f"Job {args.completions} x {args.parallelism}: {job:.2f} s, {args.completions / job:.1f} completions/s"
    )
    print(f"{args.completions} bare pods:      {bare:.2f} s, {args.completions / bare:.1f} pods/s")
    print(f"ratio (Job / bare pods): {bare / job:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
