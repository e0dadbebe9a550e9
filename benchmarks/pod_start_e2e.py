"""Pod start end to end: API create -> Running and -> Ready, through the scheduler and a node agent.

Why: the Kubernetes pod startup SLO is about this path (create to running, images present), not
about the container runtime alone (benchmarks/pod_start.py). A one-node LocalCluster (store, control
plane with its scheduler, one node agent) and its HTTPS API server get pods created one at a time
through the API (`RestClient` with the admin kubeconfig, as `kubectl create` would), each a busybox
httpd with an httpGet readiness probe; the clock runs from the create request until the pod's
status says Running, and until its Ready condition is True (read from the registry every 5 ms). Pods stay up (as a deployment's would) until the cluster stops.

Baselines, in the same run, one at a time like the pods:
- embedded mode (process runtime): spawning the same busybox httpd as a bare process (-> running:
  the spawn returns; -> ready: its port answers an HTTP request);
- Docker nodes (root and a Docker engine): `docker run -d` of the same image and command (-> running:
  the CLI returns; -> ready: the port answers, published on loopback).
With fewer than 100 pods, p99 is the maximum, and the rows say so.

Every wait is bounded per pod (POD_WAIT: one pod not Ready that long is a failure), not per series:
a series' length grows with the machine's load, and a busy machine should slow the figures, not
fail the run. benchmarks/run.py's limit for the whole benchmark bounds the sum.

    python benchmarks/pod_start_e2e.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

from common import Row, docker_available, pct_label, percentile, start_cluster

from nbkube.apiserver import serve
from nbkube.client.kubeconfig import load_kubeconfig
from nbkube.client.rest import RestClient

HTTPD = "mkdir -p /tmp/www-$POD_NAME && echo ok > /tmp/www-$POD_NAME/index.html && exec httpd -f -p $POD_IP:8080 -h /tmp/www-$POD_NAME"


def _pod(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"e2e-{i:03d}", "namespace": "default", "labels": {"app": "e2e"}},
        "spec": {"containers": [{
            "name": "web", "image": "busybox", "command": ["sh", "-c", HTTPD],
            "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "ports": [{"containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
        }]},
    }  # fmt: skip


def _ready(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


# seconds one pod (or one baseline container/process) may take to answer; seconds take <= 1 when quiet
POD_WAIT = 120.0


def nbkube_series(runtime: str, n: int, pod_wait: float = POD_WAIT) -> tuple[list[float], list[float]]:
    """(create -> Running, create -> Ready) in seconds for n pods created one at a time."""
    with (
        tempfile.TemporaryDirectory(prefix="nbkube-bench-e2e-") as data,
        start_cluster(nodes=1, runtime=runtime, store="memory", data_dir=data) as cluster,
    ):
        cluster.wait_ready(180)
        server = serve(cluster)
        try:
            client = RestClient(load_kubeconfig(server.write_kubeconfig(f"{data}/kubeconfig")))
            return _series(cluster.api, client, runtime, n, pod_wait)
        finally:
            server.stop()


def _series(
    api: Any, client: RestClient, runtime: str, n: int, pod_wait: float
) -> tuple[list[float], list[float]]:
    running: list[float] = []
    ready: list[float] = []
    for i in range(n):
        pod = _pod(i)
        t0 = time.monotonic()
        deadline = t0 + pod_wait
        client.create(pod)
        t_run: float | None = None
        while True:
            got = api.get("Pod", pod["metadata"]["name"], "default")
            now = time.monotonic()
            phase = (got.get("status") or {}).get("phase")
            if t_run is None and phase == "Running":
                t_run = now
            if t_run is not None and _ready(got):
                break
            if phase == "Failed" or now > deadline:
                raise RuntimeError(f"{runtime}: pod {i} not Ready within {pod_wait:g} s of its create "
                                   f"(load average {os.getloadavg()[0]:.1f}): {got.get('status')}")  # fmt: skip
            time.sleep(0.005)
        running.append(t_run - t0)
        ready.append(now - t0)
    return running, ready


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _wait_http(port: int, deadline: float) -> None:
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                r.read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def process_baseline(n: int, pod_wait: float = POD_WAIT) -> tuple[list[float], list[float]]:
    busybox = shutil.which("busybox")
    if not busybox:
        raise RuntimeError("busybox not found (apt-get install busybox-static)")
    running: list[float] = []
    ready: list[float] = []
    procs: list[subprocess.Popen[bytes]] = []
    www = tempfile.mkdtemp(prefix="nbkube-bench-www-")
    try:
        with open(f"{www}/index.html", "w") as f:
            f.write("ok\n")
        for _ in range(n):
            port = _free_port()
            t0 = time.monotonic()
            deadline = t0 + pod_wait
            procs.append(subprocess.Popen([busybox, "httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", www]))
            running.append(time.monotonic() - t0)
            _wait_http(port, deadline)
            ready.append(time.monotonic() - t0)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(5)
        shutil.rmtree(www, ignore_errors=True)
    return running, ready


def docker_baseline(n: int, pod_wait: float = POD_WAIT) -> tuple[list[float], list[float]]:
    running: list[float] = []
    ready: list[float] = []
    ids: list[str] = []
    try:
        for _ in range(n):
            port = _free_port()
            t0 = time.monotonic()
            deadline = t0 + pod_wait
            out = subprocess.run(
                ["docker", "run", "-d", "--label", "nbkube-bench-e2e=1", "-p", f"127.0.0.1:{port}:8080",
                 "busybox:latest", "sh", "-c", "echo ok > /tmp/index.html && exec httpd -f -p 8080 -h /tmp"],
                capture_output=True, text=True, check=True, timeout=pod_wait,
            )  # fmt: skip
            running.append(time.monotonic() - t0)
            ids.append(out.stdout.strip())
            _wait_http(port, deadline)
            ready.append(time.monotonic() - t0)
    finally:
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=120)
    return running, ready


def _rows(label: str, n: int, ours: tuple[list[float], list[float]], base: tuple[list[float], list[float]],
          base_label: str) -> list[Row]:  # fmt: skip
    out = []
    # the node reports a pod's status in one write once its containers run; when the readiness probe
    # has already answered by then, Running and Ready appear together: say so rather than imply two steps
    together = sum(1 for r, d in zip(ours[0], ours[1], strict=True) if r == d)
    note = f"{together} of {n} pods were Running and Ready in the same status write" if together else ""
    for which, k in (("Running", 0), ("Ready", 1)):
        for q in (50, 99):
            out.append(Row(f"pod start e2e, {label}: create -> {which} {pct_label(q, n)}",
                           percentile(ours[k], q) * 1e3, "ms", base_label, percentile(base[k], q) * 1e3,
                           "same-run", samples=n, note=note))  # fmt: skip
    return out


def rows(quick: bool = False) -> list[Row]:
    n = 10 if quick else 100
    out = _rows(
        "embedded (process runtime)",
        n,
        nbkube_series("process", n),
        process_baseline(n),
        "bare busybox httpd spawn (-> ready: port answers)",
    )
    if docker_available():
        nd = 10 if quick else 100
        import docker  # type: ignore[import-untyped,unused-ignore]

        from nbkube.node.runtime.images import ensure_images

        client = docker.from_env(timeout=60)
        try:
            ensure_images(client)
        finally:
            client.close()
        out += _rows(
            "Docker node",
            nd,
            nbkube_series("docker", nd),
            docker_baseline(nd),
            "docker run -d of the same image (-> ready: port answers)",
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    for r in rows(args.quick):
        print(f"{r.name:70} {r.value:9.0f} {r.unit}  baseline {r.baseline_value:9.0f}  {r.ratio:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
