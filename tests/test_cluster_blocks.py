"""Many embedded clusters on one host: their own address blocks, their own processes, adoption.

Each embedded cluster takes a free loopback block (nodes, pods, ClusterIP mirror) from the host-wide
lock folder, so two of them serve the same NodePort number side by side; a port somebody else holds
becomes one Warning event; and `nbkube up` killed with SIGKILL and started again on the same folder
adopts its pods (same process, same restart count) instead of killing them. Process runtime, SQLite
store: no root, no Docker needed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from nbk_clustertest import get_or_empty, pod_ready, wait_until

from nbkube.cluster import LocalCluster, connect
from nbkube.node.network.blocks import CLUSTER_ENV, NODE_ENV
from nbkube.node.runtime.process import OWNER_ENV, STATE_ENV

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _web(tag: str, replicas: int, node_port: int) -> str:
    """An RC of busybox httpd pods answering "<tag> <pod name>" and a NodePort Service in front."""
    serve = f"d=$HOME/www; mkdir -p $d && echo {tag} $POD_NAME > $d/index.html && exec httpd -f -p $POD_IP:8080 -h $d"
    return f"""
apiVersion: v1
kind: ReplicationController
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{app: web}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: busybox
        command: [sh, -c, "{serve}"]
        env:
        - name: POD_NAME
          valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
        - name: POD_IP
          valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
        ports: [{{containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 8000, targetPort: 8080, nodePort: {node_port}}}]
"""


def _ready_pods(api: Any, count: int) -> list[dict] | None:
    pods = api.list("Pod", "default")[0]
    ready = [p for p in pods if pod_ready(p)]
    return ready if len(ready) == count else None


def _warnings(api: Any, reason: str) -> list[dict]:
    return [
        e for e in api.list("Event", "default")[0] if e.get("reason") == reason and e.get("type") == "Warning"
    ]


def test_two_clusters_serve_the_same_node_port_on_their_own_addresses(tmp_path: Any) -> None:
    clusters = []
    try:
        for tag in ("alpha", "beta"):
            cluster = LocalCluster(
                nodes=2, runtime="process", store="sqlite", data_dir=str(tmp_path / tag), name=tag
            )
            clusters.append(cluster)
            cluster.apply(_web(tag, 2, 30080))
        a, b = clusters
        assert a.address_block is not None and b.address_block is not None
        assert a.address_block.slot != b.address_block.slot
        assert not set(a.node_addresses().values()) & set(b.node_addresses().values())
        for cluster, tag in ((a, "alpha"), (b, "beta")):
            pods = wait_until(lambda c=cluster: _ready_pods(c.api, 2), 60, f"2 ready pods in {tag}")
            names = {f"{tag} {p['metadata']['name']}" for p in pods}
            for ip in cluster.node_addresses().values():
                url = f"http://{ip}:30080/"
                assert wait_until(lambda u=url: get_or_empty(u), 15, url) in names
            host, port = cluster.service_address("web")
            assert (
                wait_until(lambda h=host, p=port: get_or_empty(f"http://{h}:{p}/"), 15, "ClusterIP") in names
            )
    finally:
        for cluster in clusters:
            cluster.stop()


def test_a_node_port_held_by_someone_else_is_one_warning_event(tmp_path: Any) -> None:
    cluster = LocalCluster(nodes=1, runtime="process", store="sqlite", data_dir=str(tmp_path), name="taken")
    squatter = socket.socket()
    try:
        node_ip = cluster.node_addresses()["node-1"]
        squatter.bind((node_ip, 30081))
        squatter.listen()
        cluster.apply(_web("taken", 1, 30081))
        wait_until(lambda: _ready_pods(cluster.api, 1), 60, "1 ready pod")
        proxy = cluster.host_proxy
        assert proxy is not None
        # endpoint changes make the proxy sync again and again: still one event
        for replicas in (2, 1, 2):
            cluster.api.patch("ReplicationController", "web", "default", {"spec": {"replicas": replicas}})
            wait_until(lambda r=replicas: _ready_pods(cluster.api, r), 60, f"{replicas} ready pods")
            proxy.runner.wait_synced(10)
        assert proxy.runner.syncs >= 4
        events = wait_until(lambda: _warnings(cluster.api, "PortUnavailable"), 10, "a PortUnavailable event")
        assert len(events) == 1, events
        assert (
            events[0]["involvedObject"]["kind"] == "Service" and events[0]["involvedObject"]["name"] == "web"
        )
        assert f"{node_ip}:30081" in events[0]["message"] and "port 30081" in events[0]["message"]
        host, port = cluster.service_address("web")  # the rest of the Service is served
        assert wait_until(lambda: get_or_empty(f"http://{host}:{port}/"), 15, "ClusterIP").startswith(
            "taken "
        )
    finally:
        squatter.close()
        cluster.stop()


def _up(folder: str, store: str, log: str) -> subprocess.Popen[str]:
    with open(log, "a") as out:  # a file, not a pipe nobody reads: the process must never block on it
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nbkube.cli",
                "--store",
                store,
                "up",
                "--nodes",
                "3",
                "--runtime",
                "process",
            ]
            + ["--data-dir", folder, "--name", "killed"],
            cwd=REPO,
            # bytecode cached as an installed nbkube has it (the restart must not compile every module)
            env={
                **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
                "PYTHONPATH": REPO,
                "PYTHONPYCACHEPREFIX": os.path.join(os.path.dirname(log), "pycache"),
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def _containers(api: Any) -> dict[str, tuple[int, int]]:
    """pod name -> (container pid, restart count)"""
    out = {}
    for pod in api.list("Pod", "default")[0]:
        (status,) = pod["status"]["containerStatuses"]
        pid = int(str(status.get("containerID") or "process://0").rsplit("/", 1)[-1] or 0)
        out[pod["metadata"]["name"]] = (pid, int(status["restartCount"]))
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_nbkube_up_killed_and_restarted_adopts_its_pods(tmp_path: Any) -> None:
    folder = str(tmp_path / "cluster")
    store = "sqlite://" + str(tmp_path / "store.db")
    log = str(tmp_path / "up.log")
    up = _up(folder, store, log)
    pids: list[int] = []
    foreign: subprocess.Popen[bytes] | None = None
    try:
        client = connect(store)
        wait_until(lambda: len(client.api.list("Node")[0]) == 3, 60, "3 nodes registered")
        client.apply(_web("kept", 3, 30082))
        wait_until(lambda: _ready_pods(client.api, 3), 60, "3 ready pods")
        before = wait_until(
            lambda: (lambda c: c if all(p for p, _ in c.values()) else None)(_containers(client.api)),
            10,
            "pids",
        )
        pids = [pid for pid, _ in before.values()]
        node_ips = [
            a["address"]
            for n in client.api.list("Node")[0]
            for a in n["status"]["addresses"]
            if a["type"] == "InternalIP"
        ]
        url = f"http://{node_ips[0]}:30082/"
        assert wait_until(lambda: get_or_empty(url), 15, url).startswith("kept ")

        os.kill(up.pid, signal.SIGKILL)
        up.wait(10)
        assert all(_alive(pid) for pid in pids)  # the pods outlive their cluster's process
        assert get_or_empty(url) == ""  # nobody serves the NodePort meanwhile

        # a process group of somebody else's dead cluster, looking like one of our pods, started outside
        foreign = subprocess.Popen(
            ["sleep", "120"],
            env={
                "PATH": "/usr/bin:/bin",
                OWNER_ENV: "999999999:1",
                STATE_ENV: str(tmp_path / "someone-else" / "process" / "node-1"),
                CLUSTER_ENV: "0123456789abcdef",
                NODE_ENV: "node-1",
            },
            start_new_session=True,
        )
        started = time.monotonic()
        up = _up(folder, store, log)
        wait_until(lambda: get_or_empty(url, timeout=0.5), 20, f"{url} after the restart", interval=0.05)
        answered = time.monotonic() - started
        assert answered < 3.0, f"the NodePort answered {answered:.1f}s after the restart"
        # every node adopted its pods: the same processes, no restart counted, still serving
        time.sleep(2)  # a few heartbeats and pod syncs of the new agents
        assert _containers(client.api) == before
        assert all(_alive(pid) for pid in pids)
        assert wait_until(lambda: _ready_pods(client.api, 3), 10, "3 ready pods after the restart")
        for ip in node_ips:
            assert get_or_empty(f"http://{ip}:30082/").startswith("kept ")
        up.send_signal(signal.SIGTERM)
        assert up.wait(30) == 0, Path(log).read_text()[-3000:]
        wait_until(lambda: not any(_alive(pid) for pid in pids), 10, "the pods stopped with their cluster")
        assert foreign.poll() is None  # neither the restart nor the stop touched it
        client.close()
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(10)
        if foreign is not None:
            foreign.kill()
            foreign.wait(5)
        for pid in pids:  # whatever a failed assertion left behind
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
