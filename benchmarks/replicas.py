"""50 replicas from 0 to all running: nbkube on 3 Docker nodes beside Docker Swarm on the same engine.

Target: nbkube <= 0.3x Swarm's time. Both start the same image (busybox:latest, imported
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
import uuid
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from common import Row, require_docker, start_cluster  # noqa: E402

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
        start_cluster(nodes=3, runtime="docker", store="memory", data_dir=data, name="bench") as cluster,
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
    import docker  # type: ignore[import-untyped,unused-ignore]

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
        # Poll through the SDK, not `docker service ps`: a CLI process every 50 ms would steal CPU
        # from the engine on a small machine and make Swarm look slower than it is.
        api = docker.from_env(timeout=60).api
        while time.perf_counter() - t0 < timeout:
            tasks = api.tasks(filters={"service": name, "desired-state": "running"})
            if sum(1 for t in tasks if (t.get("Status") or {}).get("State") == "running") >= replicas:
                return time.perf_counter() - t0
            time.sleep(0.1)
        raise RuntimeError(f"swarm: {replicas} tasks not running within {timeout}s")
    finally:
        _docker("service", "rm", name, check=False)
        if not joined:
            _docker("swarm", "leave", "--force", check=False)


def raw_docker_time(replicas: int, workers: int, *, sandbox: bool) -> float:
    """Seconds to create and start `replicas` pods (sandbox=True) or bare containers via the SDK."""
    import docker  # type: ignore[import-untyped,unused-ignore]

    from nbkube.node.runtime.images import PAUSE_IMAGE

    api = docker.from_env(timeout=120).api
    run = uuid.uuid4().hex[:6]
    made: list[str] = []

    def one(i: int) -> None:
        network = "none"
        if sandbox:
            pause = api.create_container(
                PAUSE_IMAGE, name=f"nbkube-raw-{run}-p{i}", detach=True,
                host_config=api.create_host_config(network_mode="none", ipc_mode="shareable"),
            )["Id"]  # fmt: skip
            made.append(pause)
            api.start(pause)
            network = f"container:{pause}"
        app = api.create_container(
            "busybox:latest", command=["sleep", "3600"], name=f"nbkube-raw-{run}-a{i}",
            host_config=api.create_host_config(
                network_mode=network, ipc_mode=network if sandbox else None
            ),
        )["Id"]  # fmt: skip
        made.append(app)
        api.start(app)

    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, range(replicas)))
        return time.perf_counter() - t0
    finally:
        for cid in made:
            api.remove_container(cid, force=True)


def rows(quick: bool = False) -> list[Row]:
    require_docker()
    replicas, workers = (5, 5) if quick else (50, 24)
    ours = nbkube_time(replicas, 120 if quick else 300)
    swarm = swarm_time(replicas, 120 if quick else 300)
    floor_pods = raw_docker_time(replicas, workers, sandbox=True)
    return [
        Row(f"{replicas} replicas, 0 -> all Running, 3 Docker nodes", ours, "s",
            "Docker Swarm service on the same engine", swarm, "same-run", samples=1),
        Row(f"{replicas} pods (pause + app) through the Docker SDK, {workers} at a time, no orchestration",
            floor_pods, "s", "Docker Swarm service on the same engine", swarm, "same-run", samples=1,
            note="the engine's floor for nbkube's pods"),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--workers", type=int, default=24, help="parallel creates for the raw floors")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root and a running dockerd", file=sys.stderr)
        return 1
    ours = nbkube_time(args.replicas, args.timeout)
    swarm = swarm_time(args.replicas, args.timeout)
    floor_pods = raw_docker_time(args.replicas, args.workers, sandbox=True)
    floor_bare = raw_docker_time(args.replicas, args.workers, sandbox=False)
    print(f"machine: {os.cpu_count()} cores; {args.replicas} replicas of busybox `sleep`, 0 -> all running")
    rows = [
        ("nbkube (3 docker nodes)", ours),
        ("docker swarm", swarm),
        (f"raw SDK: pods (pause+app), {args.workers} at a time", floor_pods),
        (f"raw SDK: bare containers, {args.workers} at a time", floor_bare),
    ]
    for label, seconds in rows:
        print(f"{label:44} {seconds:8.2f} s  {seconds / swarm:5.2f}x swarm")
    print(f"ratio nbkube/swarm: {ours / swarm:.2f}x (target <= 0.3x); nbkube/raw pods: {ours / floor_pods:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
