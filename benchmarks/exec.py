"""Exec round trip through nbkube's API server, beside the runtime's own exec, measured in one run.

Why: `kubectl exec` goes client -> API server (TLS, WebSocket, v5 channels) -> node agent (a framed
upgrade) -> runtime; this shows what that path costs over asking the runtime directly. Each
series runs `echo hi` in the same pod's container, one at a time, and waits for its output and
exit code:

  api stream     the official Python client's stream(connect_get_namespaced_pod_exec) (one TLS
                 connection and WebSocket per exec, as the client does it);
  kubectl exec   the real kubectl (a process start, discovery cache, TLS, WebSocket);
  docker:  docker SDK   the engine's exec API from Python (exec_create + exec_start);
           docker exec  the docker CLI on the same container;
  process: spawn        a direct subprocess of the host's busybox (what the process runtime runs).

And a port-forward pair: one `kubectl port-forward pod/web LOCAL:8080` left running (SPDY/3.1,
tunnelled in a WebSocket by kubectl >= 1.31), then one HTTP/1.0 GET at a time on a new TCP
connection (so a new pair of SPDY streams, and a new agent connection to the pod, per GET):

  port-forward GET   through kubectl's local port -> API server -> node agent -> pod;
  direct GET         the same GET straight to the pod's IP and port (the baseline).

The ratio column is each series' p50 over its baseline's: the SDK (docker) or the direct spawn
(process) for the Python series, the docker CLI (docker) or the direct spawn (process) for kubectl,
the direct GET for the port-forward GET.

Usage: python benchmarks/exec.py [--runtime process|docker|both] [--count 30]
(benchmarks/run.py runs both runtimes where Docker answers: 30 of each, 5 with --quick)
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from common import Row, docker_available, start_cluster

from nbkube.apiserver import serve
from nbkube.cluster import LocalCluster
from nbkube.node.runtime.process import find_busybox

ECHO = ["echo", "hi"]


def _timed(fn: Callable[[], Any], count: int) -> list[float]:
    fn()  # warm up (connections, caches)
    out: list[float] = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def _wait_running(cluster: LocalCluster, name: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod = cluster.api.get("Pod", name, "default")
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        if statuses and "running" in (statuses[0].get("state") or {}):
            return pod
        time.sleep(0.2)
    raise SystemExit(f"pod {name} is not running after {timeout:g}s")


def _check(out: str, what: str, detail: str = "") -> None:
    if out.strip() != "hi":
        raise SystemExit(f"{what} answered {out!r}, not 'hi'" + (f" ({detail})" if detail else ""))


def _check_run(res: subprocess.CompletedProcess[str], what: str) -> None:
    """_check of a command's output, naming its exit code and the end of its stderr if wrong."""
    _check(res.stdout, what, f"exit code {res.returncode}, stderr {res.stderr[-500:]!r}")


def _http_get(host: str, port: int) -> None:
    """One HTTP/1.0 GET on a new connection, read to its end; SystemExit unless it is the pod's."""
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    if not (data.startswith(b"HTTP/1.") and data.endswith(b"\r\n\r\nweb\n")):
        raise SystemExit(f"GET {host}:{port} answered {data[:200]!r}")


def _port_forward_rows(
    cluster: LocalCluster, kubectl: str, env: dict[str, str], count: int
) -> list[tuple[str, list[float], str]]:
    """GETs through `kubectl port-forward` and straight to the pod, one run each."""
    serve_web = "mkdir -p w && echo web > w/index.html && exec httpd -f -p 8080 -h w"
    cluster.api.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "web", "image": "busybox", "command": ["sh", "-c", serve_web]}]},
        }
    )
    pod_ip = _wait_running(cluster, "web")["status"]["podIP"]
    deadline = time.monotonic() + 30
    while True:  # running is not listening yet
        try:
            _http_get(pod_ip, 8080)
            break
        except (OSError, SystemExit):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        local = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [kubectl, "port-forward", "pod/web", f"{local}:8080"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # kubectl prints it once it listens (or exits)
        if f":{local} -> 8080" not in line:
            raise SystemExit(f"kubectl port-forward did not start: {line}")
        direct = _timed(lambda: _http_get(pod_ip, 8080), count)
        forwarded = _timed(lambda: _http_get("127.0.0.1", local), count)
    finally:
        proc.kill()
        proc.wait(10)
    return [("direct GET", direct, ""), ("port-forward GET", forwarded, "direct GET")]


def run(runtime: str, count: int) -> list[tuple[str, list[float], str]]:
    from kubernetes import client, config
    from kubernetes.stream import stream

    kubectl = shutil.which("kubectl")
    rows: list[tuple[str, list[float], str]] = []
    with (
        tempfile.TemporaryDirectory() as folder,
        start_cluster(
            nodes=1, runtime=runtime, store="sqlite", data_dir=folder + "/c", name=f"bx{runtime[:2]}"
        ) as cluster,
    ):
        srv = serve(cluster)
        try:
            kubeconfig = srv.write_kubeconfig(folder + "/kubeconfig")
            cluster.api.create(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "box", "namespace": "default"},
                    "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]},
                }
            )
            pod = _wait_running(cluster, "box")
            config.load_kube_config(kubeconfig)
            api = client.CoreV1Api()

            def api_exec() -> None:
                out = stream(
                    api.connect_get_namespaced_pod_exec,
                    "box",
                    "default",
                    command=ECHO,
                    stdout=True,
                    stderr=True,
                    stdin=False,
                    tty=False,
                )
                _check(out, "the API")

            env = {**os.environ, "KUBECONFIG": kubeconfig, "HOME": folder}

            def kubectl_exec() -> None:
                assert kubectl is not None
                res = subprocess.run(
                    [kubectl, "exec", "box", "--", *ECHO], capture_output=True, text=True, env=env
                )
                _check_run(res, "kubectl exec")

            if runtime == "docker":
                import docker

                dclient = docker.from_env()
                cid = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]

                def sdk_exec() -> None:
                    # output not checked: the SDK reads the raw socket past the HTTP response's
                    # buffer, so a fast exec's output is sometimes lost (nbkube's
                    # dockerstreams.py reads that buffer first)
                    res = dclient.api.exec_create(cid, ECHO)
                    dclient.api.exec_start(res["Id"])

                def cli_exec() -> None:
                    res = subprocess.run(["docker", "exec", cid, *ECHO], capture_output=True, text=True)
                    _check_run(res, "docker exec")

                base_py, base_cli = "docker SDK", "docker exec"
                rows.append((base_py, _timed(sdk_exec, count), ""))
                rows.append((base_cli, _timed(cli_exec, count), ""))
            else:
                busybox = find_busybox()
                if busybox is None:
                    raise SystemExit("no busybox on this host")

                def spawn() -> None:
                    res = subprocess.run([busybox, *ECHO], capture_output=True, text=True)
                    _check(res.stdout, "the direct spawn")

                base_py = base_cli = "spawn"
                rows.append(("spawn", _timed(spawn, count), ""))
            rows.append(("api stream", _timed(api_exec, count), base_py))
            if kubectl is not None:
                rows.append(("kubectl exec", _timed(kubectl_exec, count), base_cli))
                rows += _port_forward_rows(cluster, kubectl, env, count)
            else:
                print("kubectl not found: its series (exec, port-forward) are left out", file=sys.stderr)
        finally:
            srv.stop()
    return rows


def rows_for(runtimes: list[str], count: int) -> list[Row]:
    out = []
    for runtime in runtimes:
        series = run(runtime, count)
        values = {name: v for name, v, _ in series}
        for name, samples, baseline in series:
            if not baseline:
                continue  # a baseline is shown beside what it is the baseline of
            out.append(Row(f"{name} ({runtime}), p50", statistics.median(samples), "ms", baseline=baseline,
                           baseline_value=statistics.median(values[baseline]), baseline_kind="same-run",
                           samples=count, note=f"p99 {_pct(samples, 99):.1f} ms"))  # fmt: skip
    return out


def rows(quick: bool = False) -> list[Row]:
    runtimes = ["process", "docker"] if docker_available() else ["process"]
    return rows_for(runtimes, 5 if quick else 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", choices=["process", "docker", "both"], default="process")
    parser.add_argument("--count", type=int, default=30)
    args = parser.parse_args()
    runtimes = ["process", "docker"] if args.runtime == "both" else [args.runtime]
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"{'runtime':8} {'series':16} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}  ratio (p50 / baseline)")
    for runtime in runtimes:
        rows = run(runtime, args.count)
        p50 = {name: statistics.median(values) for name, values, _ in rows}
        for name, values, baseline in rows:
            ratio = f"{p50[name] / p50[baseline]:.1f}x {baseline}" if baseline else "(baseline)"
            print(
                f"{runtime:8} {name:16} {p50[name]:8.1f} {_pct(values, 99):8.1f} "
                f"{statistics.mean(values):8.1f}  {ratio}"
            )


if __name__ == "__main__":
    main()
