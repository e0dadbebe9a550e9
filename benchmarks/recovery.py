"""Recovery after failures: `nbkube up` killed with SIGKILL and started again, and a standby control
plane taking over from a crashed leader. The README's "Failure behaviour" table quotes it.

1. `up` killed: `nbkube up --nodes 2 --runtime process` (and `--runtime docker` when root with a
   Docker engine) runs PODS pods behind a NodePort Service; the process is killed with SIGKILL and
   started again on the same folder. Measured from the restart: until the Service answers on its
   NodePort, and until every pod is Ready again (adopted: the same processes or containers). The
   baseline, in the same run, is the first start: from launching `up` to the same two points.
   Beside it, the floor no restart can beat, measured in the same run: a bare `python -c pass`
   plus a private etcd's start on a folder of its own until it answers.
2. Leader takeover: two control planes on one store (profile "fast"); the leader crashes without
   releasing its Lease (its process lives on); measured until the standby leads, against the
   Lease's duration. And a control plane started after the leader's process was SIGKILLed (what a
   restarted `up` meets): its holder is a dead process of this machine, whose Lease is taken at
   once.

    python benchmarks/recovery.py [--pods 4] [--runs 2] [--runtime process|docker]...

`benchmarks/run.py` runs `rows(quick)`: the process runtime always, Docker nodes when root with a
Docker engine (else a row says why not).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from common import Row, docker_available  # noqa: E402

from nbkube.cluster import connect  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MANIFEST = """
apiVersion: v1
kind: ReplicationController
metadata: {{name: rec}}
spec:
  replicas: {pods}
  selector: {{app: rec}}
  template:
    metadata: {{labels: {{app: rec}}}}
    spec:
      containers:
      - name: web
        image: busybox
        # its own address: on process nodes every pod shares the host's network namespace
        command: ["sh", "-c", "mkdir -p www; echo ok > www/index.html; exec httpd -f -p $(POD_IP):{port} -h www"]
        env: [{{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}]
        ports: [{{containerPort: {port}}}]
        readinessProbe: {{httpGet: {{port: {port}, path: /index.html}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: rec}}
spec:
  type: NodePort
  selector: {{app: rec}}
  ports: [{{port: {port}, targetPort: {port}}}]
"""
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
    """A port nobody listens on here: process pods share the host's network namespace, where a
    server on the wildcard address would take the same port from every pod address."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


def _up(folder: str, runtime: str, log: str) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "nbkube.cli", "up", "--nodes", "2", "--runtime", runtime]
            + ["--data-dir", folder, "--name", "recovery"],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": REPO, "NBKUBE_STORE": ""},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _store_url(log: str, count: int, deadline: float, up: subprocess.Popen[bytes]) -> str:
    while time.monotonic() < deadline:
        with open(log, errors="replace") as fh:
            text = fh.read()
        lines = [x for x in text.splitlines() if x.startswith("use: nbkube --store ")]
        if len(lines) >= count:
            return lines[-1].split()[3]
        if up.poll() is not None:
            raise RuntimeError(f"nbkube up exited with {up.returncode}: {text[-2000:]}")
        time.sleep(0.02)
    raise TimeoutError(f"nbkube up did not start (see {log})")


def _answers(url: str) -> bool:
    try:
        with _NO_PROXY.open(url, timeout=0.5) as resp:
            return bool(resp.read())
    except OSError:
        return False


def _ready(api: Any, pods: int) -> bool:
    items = api.list("Pod", "default", label_selector="app=rec")[0]
    return len(items) == pods and all(
        any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
        for p in items
    )


def _node_url(api: Any) -> str:
    """The Service's NodePort (allocated by the cluster) on the first node."""
    node = api.list("Node")[0][0]
    ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    node_port = api.get("Service", "rec", "default")["spec"]["ports"][0]["nodePort"]
    return f"http://{ip}:{node_port}/index.html"


def _times(started: float, api: Any, url: str, pods: int, timeout: float) -> tuple[float, float]:
    """Seconds from `started` until the Service answers, and until every pod is Ready."""
    answered = ready = None
    deadline = started + timeout
    while (answered is None or ready is None) and time.monotonic() < deadline:
        now = time.monotonic()
        if answered is None and _answers(url):
            answered = now - started
        if ready is None:
            try:
                if _ready(api, pods):
                    ready = now - started
            except Exception:  # the store may not answer yet
                pass
        time.sleep(0.02)
    if answered is None or ready is None:
        raise TimeoutError(f"not recovered within {timeout:g}s (service {answered}, pods {ready})")
    return answered, ready


class _AnswerTime:
    """Seconds from `started` until `url` answers, asked every 20 ms in a thread of its own."""

    def __init__(self, url: str, started: float, timeout: float) -> None:
        self._took: float | None = None
        self._thread = threading.Thread(target=self._run, args=(url, started, timeout), daemon=True)
        self._thread.start()

    def _run(self, url: str, started: float, timeout: float) -> None:
        while time.monotonic() < started + timeout:
            now = time.monotonic()
            if _answers(url):
                self._took = now - started
                return
            time.sleep(0.02)

    def result(self) -> float:
        self._thread.join()
        if self._took is None:
            raise TimeoutError("the Service did not answer after the restart")
        return self._took


def up_killed(runtime: str, pods: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """((first start: service, pods), (after SIGKILL: service, pods)) in seconds."""
    with tempfile.TemporaryDirectory(prefix="nbk-rec-") as tmp:
        folder, log = os.path.join(tmp, "c"), os.path.join(tmp, "up.log")
        t0 = time.monotonic()
        up = _up(folder, runtime, log)
        try:
            client = connect(_store_url(log, 1, t0 + 60, up))
            client.apply(MANIFEST.format(pods=pods, port=_free_port()))
            url = _node_url(client.api)
            first = _times(t0, client.api, url, pods, 60)
            os.kill(up.pid, signal.SIGKILL)
            up.wait(10)
            client.close()
            t1 = time.monotonic()
            up = _up(folder, runtime, log)
            # the Service is asked from the restart on, not from when `up` serves its store:
            # Docker nodes' NodePorts never stop answering (the rules stay in their namespaces)
            probe = _AnswerTime(url, t1, 60)
            client = connect(_store_url(log, 2, t1 + 60, up))
            _answered, ready = _times(t1, client.api, url, pods, 60)
            again = (probe.result(), ready)
            client.api.delete("ReplicationController", "rec", "default")
            client.close()
            up.send_signal(signal.SIGTERM)
            up.wait(60)
            return first, again
        finally:
            if up.poll() is None:  # a failed run: stop it cleanly (its containers, namespaces go too)
                up.send_signal(signal.SIGTERM)
                try:
                    up.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(up.pid, signal.SIGKILL)
                    up.wait(10)


def floor() -> tuple[float, float]:
    """(a bare `python -c pass`, a private etcd's launch until it answers) in seconds."""
    from nbkube.security.private import make_private_dir
    from nbkube.store.etcd_server import launch_etcd

    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    python = time.monotonic() - t0
    folder = tempfile.mkdtemp(prefix="nbk-floor-")
    try:
        make_private_dir(folder)
        t0 = time.monotonic()
        server = launch_etcd(os.path.join(folder, "etcd"), socket_dir=folder)
        etcd = time.monotonic() - t0
        server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return python, etcd


def leader_takeover() -> tuple[float, float]:
    """(seconds until the standby leads after the leader crashed, the Lease's duration)."""
    from nbkube.cluster import make_registry
    from nbkube.controlplane.manager import ControlPlane
    from nbkube.controlplane.profiles import get_profile
    from nbkube.store import open_store

    profile = get_profile("fast")
    api = make_registry(open_store("sqlite://:memory:"))
    first = ControlPlane(api, profile=profile)
    second = ControlPlane(api, profile=profile)
    try:
        first.start()
        first.wait_leading(30)
        second.start()
        time.sleep(profile.leader_renew_interval * 2)
        assert not second.is_leader
        t0 = time.monotonic()
        first.crash()
        while not second.is_leader:
            if time.monotonic() - t0 > 60:
                raise TimeoutError("the standby did not take over")
            time.sleep(0.005)
        return time.monotonic() - t0, profile.leader_lease_duration
    finally:
        second.stop()
        first.stop()
        api.close()


def _runtimes(asked: list[str] | None) -> list[str]:
    return asked or (["process", "docker"] if docker_available() else ["process"])


def rows(quick: bool = False) -> list[Row]:
    pods, runs = (2, 1) if quick else (4, 3)
    out: list[Row] = []
    floors = [floor() for _ in range(runs)]
    python = statistics.median(f[0] for f in floors)
    etcd = statistics.median(f[1] for f in floors)
    out.append(Row("recovery floor: bare python start + private etcd answering", python + etcd, "s",
                   samples=runs, note=f"python {python:.2f} s + etcd {etcd:.2f} s"))  # fmt: skip
    for runtime in ["process", "docker"]:
        if runtime == "docker" and not docker_available():
            out.append(Row("recovery: up SIGKILL, docker nodes", None, "s",
                           note="skipped: needs root and a Docker engine"))  # fmt: skip
            continue
        results = [up_killed(runtime, pods) for _ in range(runs)]
        for i, what in enumerate(["Service answers", "all pods Ready"]):
            again = statistics.median(r[1][i] for r in results)
            first = statistics.median(r[0][i] for r in results)
            out.append(Row(f"recovery: up SIGKILL -> restarted, {runtime} nodes, {pods} pods: {what}, median",
                           again, "s", "the first start to the same point", first, "same-run", samples=runs,
                           note=f"runs: {', '.join(f'{r[1][i]:.2f}' for r in results)} s; "
                                f"floor (python + etcd) {python + etcd:.2f} s"))  # fmt: skip
    takeovers = [leader_takeover() for _ in range(runs)]
    took, lease = statistics.median(t[0] for t in takeovers), takeovers[0][1]
    out.append(Row("recovery: standby control plane leads after the leader crashed, median", took, "s",
                   "the Lease's duration (fast profile)", lease, "same-run", samples=runs))  # fmt: skip
    restarts = [leader_restart_takeover() for _ in range(runs)]
    took = statistics.median(t[0] for t in restarts)
    out.append(Row("recovery: control plane started after the leader's process was SIGKILLed leads, median",
                   took, "s", "the Lease's duration (fast profile)", lease, "same-run", samples=runs,
                   note="the dead holder is a process of this machine: its Lease is taken at once"))  # fmt: skip
    return out


_HOLDER = """
import sys, time
from nbkube.cluster import make_registry
from nbkube.controlplane.manager import ControlPlane
from nbkube.store import open_store
cp = ControlPlane(make_registry(open_store(sys.argv[1])), profile="fast", controllers=[], scheduler=False)
cp.start()
while not cp.is_leader:
    time.sleep(0.01)
print("leading", flush=True)
time.sleep(120)
"""


def leader_restart_takeover() -> tuple[float, float]:
    """(seconds until a new control plane leads after the leading one's process was SIGKILLed, the
    Lease's duration): what a restarted `up` waits for its predecessor's Lease."""
    from nbkube.cluster import make_registry
    from nbkube.controlplane.manager import ControlPlane
    from nbkube.controlplane.profiles import get_profile
    from nbkube.store import open_store

    profile = get_profile("fast")
    with tempfile.TemporaryDirectory(prefix="nbk-lease-") as tmp:
        url = "sqlite://" + os.path.join(tmp, "store.db")
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, url], cwd=REPO, env={**os.environ, "PYTHONPATH": REPO},
            stdout=subprocess.PIPE,
        )  # fmt: skip
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == b"leading"
            holder.kill()
            holder.wait(10)
            api = make_registry(open_store(url))
            cp = ControlPlane(api, profile=profile, controllers=[], scheduler=False)
            t0 = time.monotonic()
            cp.start()
            try:
                while not cp.is_leader:
                    if time.monotonic() - t0 > 60:
                        raise TimeoutError("the restarted control plane did not lead")
                    time.sleep(0.005)
                return time.monotonic() - t0, profile.leader_lease_duration
            finally:
                cp.stop()
                api.close()
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=4)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--runtime",
        choices=["process", "docker"],
        action="append",
        help="only these (default: both where possible)",
    )
    args = parser.parse_args()
    python, etcd = floor()
    print(
        f"floor: bare python start {python:.2f}s + private etcd answering {etcd:.2f}s = {python + etcd:.2f}s"
    )
    print(f"{'scenario':<52} {'run':>3} {'after failure':>14} {'baseline':>10} {'ratio':>6}")
    for runtime in _runtimes(args.runtime):
        for run in range(1, args.runs + 1):
            (svc0, pods0), (svc1, pods1) = up_killed(runtime, args.pods)
            label = f"up SIGKILL, {runtime} nodes, {args.pods} pods:"
            print(
                f"{label + ' Service answers':<52} {run:>3} {svc1:>13.2f}s {svc0:>9.2f}s {svc1 / svc0:>5.2f}x"
            )
            print(
                f"{label + ' all Ready':<52} {run:>3} {pods1:>13.2f}s {pods0:>9.2f}s {pods1 / pods0:>5.2f}x"
            )
    for run in range(1, args.runs + 1):
        took, lease = leader_takeover()
        print(
            f"{'standby control plane leads (vs lease)':<52} {run:>3} {took:>13.2f}s {lease:>9.2f}s {took / lease:>5.2f}x"
        )
    for run in range(1, args.runs + 1):
        took, lease = leader_restart_takeover()
        label = "leads after its SIGKILLed leader (vs lease)"
        print(f"{label:<52} {run:>3} {took:>13.2f}s {lease:>9.2f}s {took / lease:>5.2f}x")


if __name__ == "__main__":
    main()
