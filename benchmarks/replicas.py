"""50 replicas from 0 to all running: nbkube on 3 Docker nodes beside Docker Swarm on the same engine.

Issue 4 target: nbkube <= 0.3x Swarm's time. Both start the same image (busybox:latest, imported
from the host by `nbkube images seed`, so neither pulls) running `sleep`. nbkube's clock runs from
applying a ReplicationController with 50 replicas until 50 pods report Running; Swarm's from
`docker service create --replicas 50` until `docker service ps` shows 50 tasks Running. Swarm is
initialised for the run on loopback and left again afterwards. Needs root and dockerd.

    python benchmarks/replicas.py [--replicas 50] [--timeout 300]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from nbkube.cluster import LocalCluster  # noqa: E402

RC = """
apiVersion: v1
kind: ReplicationController
metadata: {{name: bench}}
spec:
  replicas: {replicas}
  selector: {{app: bench}}
  template:
    metadata: {{labels: {{app: bench}}}}
    spec:
      containers:
      - name: c
        image: busybox
        command: ["sleep", "3600"]
"""


def _docker(*args: str, check: bool = True) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=120).stdout


def nbkube_time(replicas: int, timeout: float) -> float:
    with (
        tempfile.TemporaryDirectory() as data,
        LocalCluster(nodes=3, runtime="docker", store="memory", data_dir=data, name="bench") as cluster,
    ):
        t0 = time.perf_counter()
        cluster.apply(RC.format(replicas=replicas))
        while time.perf_counter() - t0 < timeout:
            pods = cluster.api.list("Pod", "default", label_selector="app=bench")[0]
            running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
            if len(running) == replicas:
                return time.perf_counter() - t0
            time.sleep(0.05)
    raise RuntimeError(f"nbkube: {replicas} pods not running within {timeout}s")


def swarm_time(replicas: int, timeout: float) -> float:
    joined = _docker("info", "--format", "{{.Swarm.LocalNodeState}}").strip() == "active"
    if not joined:
        _docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    name = f"nbkube-bench-{os.getpid()}"
    try:
        t0 = time.perf_counter()
        _docker(
            "service",
            "create",
            "--detach",
            "--no-resolve-image",
            "--name",
            name,
            "--replicas",
            str(replicas),
            "busybox:latest",
            "sleep",
            "3600",
        )
        while time.perf_counter() - t0 < timeout:
            states = _docker("service", "ps", name, "--format", "{{.CurrentState}}", check=False).split("\n")
            if sum(1 for s in states if s.startswith("Running")) >= replicas:
                return time.perf_counter() - t0
            time.sleep(0.05)
        raise RuntimeError(f"swarm: {replicas} tasks not running within {timeout}s")
    finally:
        _docker("service", "rm", name, check=False)
        if not joined:
            _docker("swarm", "leave", "--force", check=False)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root and a running dockerd", file=sys.stderr)
        return 1
    ours = nbkube_time(args.replicas, args.timeout)
    swarm = swarm_time(args.replicas, args.timeout)
    print(f"machine: {os.cpu_count()} cores; {args.replicas} replicas of busybox `sleep`, 0 -> all running")
    print(f"{'':24} {'seconds':>8}")
    print(f"{'nbkube (3 docker nodes)':24} {ours:8.2f}")
    print(f"{'docker swarm':24} {swarm:8.2f}")
    print(f"ratio nbkube/swarm: {ours / swarm:.2f}x (target <= 0.3x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
