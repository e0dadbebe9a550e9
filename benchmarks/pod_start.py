"""The Docker runtime's share of a pod start, beside raw Docker create+start of the same containers.

Why: this isolates the runtime layer (`DockerRuntime.start_pod`, no API, scheduler or agent), to
show what nbkube's container handling adds over the engine. It is NOT the end-to-end pod start
latency: benchmarks/pod_start_e2e.py measures API create -> Running/Ready through the scheduler and
the node agent. With fewer than 100 pods, p99 is the maximum, and the rows say so.

What is measured, per pod, one pod at a time (images seeded beforehand, so nothing is pulled):
  running  `DockerRuntime.start_pod` -> every container running (pause sandbox + 1 busybox httpd);
  ready    the same pod with an httpGet readiness probe -> the container Ready;
  raw pod  the same two containers through the SDK: pause create+start, then httpd
           create+start joined to its network namespace (what a pod costs without nbkube);
  raw 1    one busybox container create+start (the floor).
Pods stay up during the run (as a deployment's would) and are removed at the end.
With --bridge the nbkube series are repeated on a node with the real pod network (BridgeNetwork:
a veth into the node's bridge per pod), which the raw figures do not pay for.
The ratio column is each figure's p99 over the raw pod's p99. Needs root and a running dockerd.

Usage: python benchmarks/pod_start.py [--pods 20] [--bridge] [--timeout 120]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any

from common import Row, pct_label, percentile, require_docker

from nbkube.node.runtime.base import PodSandboxConfig
from nbkube.node.runtime.docker import DockerRuntime
from nbkube.node.runtime.images import BUSYBOX_IMAGE, PAUSE_IMAGE, ensure_images

SANDBOX = PodSandboxConfig(node_name="bench", pod_ip="", pod_cidr="", host_ip="127.0.0.1")
HTTPD = ["httpd", "-f", "-p", "8080", "-h", "/etc"]  # serves /etc/passwd as /passwd


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def _pod(i: int, probe: bool) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "web", "image": "busybox", "command": HTTPD}
    if probe:
        container["readinessProbe"] = {"httpGet": {"port": 8080, "path": "/passwd"}, "periodSeconds": 1}
    return {
        "metadata": {"name": f"bench-{i}", "namespace": "default", "uid": f"bench-{uuid.uuid4().hex[:12]}"},
        "spec": {"containers": [container]},
    }


def _wait(rt: DockerRuntime, uid: str, ready: bool, deadline: float) -> float:
    while time.monotonic() < deadline:
        st = rt.pod_status(uid)
        if st is not None and (st.all_ready if ready else st.all_running):
            return time.monotonic()
        bad = [c.reason for c in (st.containers if st else []) if c.reason not in ("", "ContainerCreating")]
        if bad:
            raise RuntimeError(f"pod {uid} failed to start: {bad}")
        time.sleep(0.002)
    raise TimeoutError(f"pod {uid} did not become {'ready' if ready else 'running'} in time")


def bench_runtime(client: Any, n: int, probe: bool, deadline: float, bridge: bool = False) -> list[float]:
    node = f"bench{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as state:
        network = None
        if bridge:  # the node network of `nbkube up --runtime docker`: netns, bridge, veth per pod
            from nbkube.node.network.bridge import BridgeNetwork

            network = BridgeNetwork(node, 252, state + "/net")
            network.setup_node()
        rt = DockerRuntime(client, node_name=node, state_dir=state, network=network)
        try:
            out = []
            for i in range(n):
                p = _pod(i, probe)
                t0 = time.monotonic()
                rt.start_pod(p, SANDBOX)
                out.append(_wait(rt, p["metadata"]["uid"], probe, deadline) - t0)
            return out
        finally:
            rt.close(remove=True)
            if network is not None:
                network.teardown()


def bench_raw(client: Any, n: int, with_pause: bool, deadline: float) -> list[float]:
    tag = f"nbkube-bench-raw={uuid.uuid4().hex[:6]}"
    made: list[Any] = []
    out = []
    try:
        for _ in range(n):
            if time.monotonic() > deadline:
                raise TimeoutError("raw docker run out of time")
            t0 = time.monotonic()
            kwargs: dict[str, Any] = {"labels": {"nbkube-bench-raw": tag}, "detach": True}
            if with_pause:
                pause = client.containers.create(
                    PAUSE_IMAGE, network_mode="bridge", ipc_mode="shareable", **kwargs
                )
                pause.start()
                made.append(pause)
                kwargs["network_mode"] = f"container:{pause.id}"
                kwargs["ipc_mode"] = f"container:{pause.id}"
            app = client.containers.create(BUSYBOX_IMAGE, HTTPD, **kwargs)
            app.start()
            out.append(time.monotonic() - t0)
            made.append(app)
    finally:
        for c in reversed(made):
            try:
                c.remove(force=True)
            except Exception as exc:  # keep removing the rest
                print(f"warning: could not remove {c.id[:12]}: {exc}", file=sys.stderr)
    return out


def rows(quick: bool = False) -> list[Row]:
    require_docker()
    import docker  # type: ignore[import-untyped,unused-ignore]

    n = 6 if quick else 100
    client = docker.from_env(timeout=60)
    try:
        ensure_images(client)
        deadline = time.monotonic() + (50 if quick else 280)
        bench_raw(client, 2, True, deadline)  # warm-up
        raw = bench_raw(client, n, True, deadline)
        ours = bench_runtime(client, n, False, deadline)
    finally:
        client.close()
    out = []
    for q in (50, 99):
        out.append(Row(f"DockerRuntime.start_pod -> running (runtime layer only) {pct_label(q, n)}",
                       percentile(ours, q) * 1e3, "ms", "raw SDK create+start of pause + app",
                       percentile(raw, q) * 1e3, "same-run", samples=n))  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--pods", type=int, default=100, help="pods per series (1..200, default 100)")
    ap.add_argument("--bridge", action="store_true", help="also measure pods on a BridgeNetwork node (root)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds for the whole run (default 120)")
    args = ap.parse_args(argv)
    if not 1 <= args.pods <= 200:
        ap.error("--pods must be in 1..200")
    import docker  # type: ignore[import-untyped,unused-ignore]

    client = docker.from_env(timeout=60)
    ensure_images(client)
    deadline = time.monotonic() + args.timeout
    n = args.pods
    # warm-up: the first container on a fresh daemon pays one-off costs
    bench_raw(client, 2, True, deadline)
    series = {
        "raw docker: 1 container create+start": bench_raw(client, n, False, deadline),
        "raw docker: pause + app create+start": bench_raw(client, n, True, deadline),
        "nbkube docker: start_pod -> running": bench_runtime(client, n, False, deadline),
        "nbkube docker: start_pod -> ready (httpGet)": bench_runtime(client, n, True, deadline),
    }
    if args.bridge:
        series["nbkube docker+bridge: -> running"] = bench_runtime(client, n, False, deadline, bridge=True)
        series["nbkube docker+bridge: -> ready (httpGet)"] = bench_runtime(
            client, n, True, deadline, bridge=True
        )
    base = pct(series["raw docker: pause + app create+start"], 99)
    print(f"pod start latency, {n} pods one at a time, Docker {client.version().get('Version')}")
    print(f"{'series':<46}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'p99/raw pod':>13}")
    for name, values in series.items():
        p50, p99 = pct(values, 50), pct(values, 99)
        mean = statistics.fmean(values)
        print(f"{name:<46}{p50 * 1e3:>9.0f}{p99 * 1e3:>9.0f}{mean * 1e3:>9.0f}{p99 / base:>12.2f}x")
    ready99 = pct(series["nbkube docker: start_pod -> ready (httpGet)"], 99)
    run99 = pct(series["nbkube docker: start_pod -> running"], 99)
    print(
        f"runtime layer only (not end to end): running p99 {run99 * 1e3:.0f} ms, ready p99 {ready99 * 1e3:.0f} ms,"
        f" running p99 / raw pod p99 {run99 / base:.2f}x" + (" (p99 = the maximum below 100 pods)" if n < 100 else "")
    )
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
