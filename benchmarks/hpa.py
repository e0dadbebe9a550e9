"""HPA reaction time: load starts -> the autoscaler's new replica is Ready.

Why: an autoscaler is only as useful as it is quick to add capacity. Each repetition starts a fresh
2-node LocalCluster on the process runtime, runs one CPU-burning pod (`burner_manifests`: 50m
requested) under an HPA at 50% (max 4), waits until the pod's CPU is in the metrics API (the
pipeline warm, as in a running cluster), then runs `nbkube.experiments.autoscale` with 2 load workers
until a second replica is Ready, and reads the seconds from the load's start to that Ready.

nbkube runs with its `fast` profile (metrics every 1 s, HPA sync every 2 s). The same-run baseline
is the same cluster with the `kubernetes` profile, i.e. upstream's default periods (metrics-server's
15 s resolution, --horizontal-pod-autoscaler-sync-period 15 s); the published figure beside it is that
15 s sync period itself, the interval upstream's controller waits between looks at the load.

    python benchmarks/hpa.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

from common import Row

from nbkube.client import metrics as metrics_client
from nbkube.cluster import LocalCluster
from nbkube.experiments import autoscale, burner_manifests, ensure_hpa

UPSTREAM_SYNC_S = 15.0
UPSTREAM_SOURCE = (
    "kube-controller-manager --horizontal-pod-autoscaler-sync-period, default 15s "
    "(kubernetes.io/docs/reference/command-line-tools-reference/kube-controller-manager)"
)


def one(profile: str, timeout: float) -> float:
    """Seconds from the load's start to the second replica Ready, with control-plane profile `profile`."""
    with (
        tempfile.TemporaryDirectory(prefix="nbkube-bench-hpa-") as data,
        LocalCluster(nodes=2, runtime="process", store="memory", profile=profile, data_dir=data) as cluster,
    ):
        for obj in burner_manifests("web", work=300_000, cpu_request="50m"):
            cluster.api.create(obj)
        cluster.experiments.wait_ready("app=web", 1, timeout=60)
        deadline = time.monotonic() + 60
        while not metrics_client.pod_metrics(cluster.api, "default", "app=web"):
            if time.monotonic() > deadline:
                raise RuntimeError("no PodMetrics for app=web within 60 s")
            time.sleep(0.2)
        ensure_hpa(cluster.api, "web", cpu_percent=50, max_replicas=4)
        result = autoscale(
            cluster, "web", "web", concurrency=2, warmup=1.0, load_seconds=timeout, cooldown=0.0,
            sample_period=0.25, stop_when_ready=2,
        )  # fmt: skip
        ready = result.reaction["new_replica_ready"]
        if ready is None:
            raise RuntimeError(f"profile {profile}: no second replica Ready within {timeout:g} s of load")
        return float(ready)


def measure(repeat: int, timeout: float) -> dict[str, list[float]]:
    return {p: [one(p, timeout) for _ in range(repeat)] for p in ("fast", "kubernetes")}


def rows(quick: bool = False) -> list[Row]:
    repeat = 1 if quick else 3
    runs = measure(repeat, 60.0)
    fast, upstream = runs["fast"], runs["kubernetes"]
    note = f"fast runs: {', '.join(f'{t:.1f}' for t in fast)} s; kubernetes-profile runs: " + ", ".join(
        f"{t:.1f}" for t in upstream
    ) + " s"
    return [
        Row("HPA, process nodes: load start -> new replica Ready (fast profile: 2 s sync), median",
            statistics.median(fast), "s", "the same with upstream's periods (kubernetes profile: 15 s sync, 15 s metrics)",
            statistics.median(upstream), "same-run", samples=repeat, note=note),
        Row("HPA, process nodes: load start -> new replica Ready vs upstream's sync period", statistics.median(fast),
            "s", "upstream HPA sync period (the wait between two looks at the load)", UPSTREAM_SYNC_S, "published",
            UPSTREAM_SOURCE, samples=repeat),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    for profile, times in measure(args.repeat, 60.0).items():
        print(f"{profile:10} load -> new replica Ready: {', '.join(f'{t:.2f}' for t in times)} s")
    print(f"upstream sync period: {UPSTREAM_SYNC_S:g} s ({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
