"""Notebook start-up benchmark: how long a new user waits, against doing the same by hand.

1. `LocalCluster(nodes=3)` (embedded: process runtime, store auto) until every node is Ready,
   against starting the same number of busybox processes by hand (one per node) and seeing each run.
2. `cluster.apply()` of the article's RC (5 replicas, busybox httpd on port 8080) and Service until
   the 5 pods are Ready (their HTTP readiness probe answers), against starting 5 busybox httpd
   processes by hand on the same kind of loopback addresses and polling each until it answers.
3. The dashboard's refresh at 1,000 and 5,000 pods (a Registry with simulated pods, no processes),
   incremental against rebuilding every widget (the measurement of `benchmarks/notebook.py`).

Each row prints ours, the baseline measured in the same run, and the ratio (ours / baseline for
times: how many times longer than by hand; baseline / ours for the dashboard: how many times faster).

    python benchmarks/notebook_start.py [--runs 3] [--skip-dashboard]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from typing import Any

from common import Row, Skip, print_rows

from nbkube.cluster import LocalCluster
from nbkube.examples import path as example_path
from nbkube.node.runtime.process import find_busybox

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _ready_pods(cluster: LocalCluster) -> int:
    pods, _ = cluster.api.list("Pod", "default", label_selector="app=web")
    return sum(
        1
        for p in pods
        if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
    )


def bench_cluster(nodes: int, replicas: int) -> tuple[float, float]:
    """(seconds LocalCluster() -> all nodes Ready, seconds apply -> `replicas` pods Ready)."""
    with tempfile.TemporaryDirectory(prefix="nbkube-bench-") as folder:
        t0 = time.perf_counter()
        cluster = LocalCluster(nodes=nodes, runtime="process", profile="fast", data_dir=folder, name="bench")
        try:
            cluster.wait_ready(60)
            up = time.perf_counter() - t0
            t1 = time.perf_counter()
            cluster.apply(example_path("rootless/web-rc.yaml"))
            cluster.apply(example_path("rootless/web-service.yaml"))
            deadline = time.monotonic() + 60
            while _ready_pods(cluster) < replicas:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{replicas} pods not Ready within 60 s")
                time.sleep(0.01)
            ready = time.perf_counter() - t1
        finally:
            cluster.stop()
    return up, ready


def _answers(url: str) -> bool:
    try:
        with _NO_PROXY.open(url, timeout=0.5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def bench_by_hand(busybox: str, count: int, httpd: bool) -> float:
    """Seconds to start `count` busybox processes by hand and see each one up: `sleep` processes
    that exist (a node), or httpd servers on their own loopback address that answer (a ready pod)."""
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="nbkube-bench-www-") as www:
        with open(os.path.join(www, "index.html"), "w") as fh:
            fh.write("hi\n")
        urls = []
        t0 = time.perf_counter()
        try:
            for i in range(count):
                if httpd:
                    ip = f"127.77.{os.getpid() % 250}.{i + 2}"
                    port = _free_port(ip)
                    procs.append(subprocess.Popen([busybox, "httpd", "-f", "-p", f"{ip}:{port}", "-h", www]))
                    urls.append(f"http://{ip}:{port}/")
                else:
                    procs.append(subprocess.Popen([busybox, "sleep", "60"]))
            if httpd:
                pending = list(urls)
                deadline = time.monotonic() + 30
                while pending and time.monotonic() < deadline:
                    pending = [u for u in pending if not _answers(u)]
                    if pending:
                        time.sleep(0.01)
                if pending:
                    raise RuntimeError(f"busybox httpd did not answer: {pending}")
            # (a `sleep` process is running once Popen returns: Popen waits for the exec to succeed)
            return time.perf_counter() - t0
        finally:
            for p in procs:
                p.kill()
                p.wait(5)


def _free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def _dashboard_rows(pods: int) -> list[list[str]]:
    # benchmarks/notebook.py holds the dashboard measurement; loaded by path (the folder is no package)
    spec = importlib.util.spec_from_file_location(
        "nbkube_bench_notebook", os.path.join(os.path.dirname(os.path.abspath(__file__)), "notebook.py")
    )
    assert spec is not None and spec.loader is not None
    module: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows: list[list[str]] = module.bench_dashboard(pods, max(10, pods // 100), 20, 10, 2.0)
    return rows


def _print(title: str, headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    print(f"\n{title}")
    for r in [headers, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


def rows_for(runs: int, nodes: int) -> list[Row]:
    busybox = find_busybox()
    if busybox is None:
        raise Skip("needs the host's busybox (apt-get install busybox-static)")
    ups, readies, hand_nodes, hand_pods = [], [], [], []
    for _ in range(runs):
        up, ready = bench_cluster(nodes, 5)
        ups.append(up)
        readies.append(ready)
        hand_nodes.append(bench_by_hand(busybox, nodes, httpd=False))
        hand_pods.append(bench_by_hand(busybox, 5, httpd=True))
    what = f"median of {runs}; process runtime, store auto"
    return [
        Row(f"LocalCluster() to {nodes} nodes Ready", statistics.median(ups), "s",
            baseline=f"{nodes} busybox processes started by hand", baseline_value=statistics.median(hand_nodes),
            baseline_kind="same-run", samples=runs, note=what),
        Row("apply of the article's RC + Service to 5 pods Ready", statistics.median(readies), "s",
            baseline="5 busybox httpd started by hand, answering", baseline_value=statistics.median(hand_pods),
            baseline_kind="same-run", samples=runs, note=what),
    ]  # fmt: skip


def rows(quick: bool = False) -> list[Row]:
    return rows_for(1 if quick else 3, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="cluster starts to time (median reported)")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--skip-dashboard", action="store_true")
    args = ap.parse_args()
    if not 1 <= args.runs <= 10:
        raise SystemExit("--runs must be from 1 to 10")
    print_rows(rows_for(args.runs, args.nodes))
    if not args.skip_dashboard:
        for pods in (1000, 5000):
            _print(
                f"dashboard at {pods} pods (sim: no processes)",
                ["measure", "incremental (ours)", "rebuild (baseline)", "baseline/ours"],
                _dashboard_rows(pods),
            )


if __name__ == "__main__":
    main()
