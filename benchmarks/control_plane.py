"""Memory of the whole control plane at scale: store, registry, API server, scheduler, every controller.

Why: a figure for "how big a cluster fits in a notebook kernel" must count everything the control
plane keeps, not the scheduler alone. In one fresh process: a SQLite store and its Registry, the
HTTPS API server (`nbkube.apiserver.serve`), and a `ControlPlane` with every controller and the
scheduler (Kubernetes' timings, with the node-monitor grace stretched to an hour so that nodes
without agents are not marked NotReady and evicted during the run). Then N
simulated Node objects (Ready, no agent) and ReplicationControllers of 100 replicas each for P pods;
the controllers create the pods and the scheduler binds them. The process's RSS is read once every
pod is bound (after a garbage collection), beside the RSS before anything started.

    python benchmarks/control_plane.py [--nodes 1000] [--pods 30000] [--timeout 600]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from typing import Any

from common import Row, rss_mib

from nbkube.registry.registry import Registry
from nbkube.store import open_store

REPLICAS = 100


def _node(i: int, pods_limit: int) -> dict[str, Any]:
    name = f"sim-{i:05d}"
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": str(pods_limit)},
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": str(pods_limit)},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }  # fmt: skip


def _rc(i: int, replicas: int) -> dict[str, Any]:
    labels = {"app": f"app-{i}"}
    return {
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": f"app-{i}", "namespace": "default"},
        "spec": {"replicas": replicas, "selector": labels, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}},
    }  # fmt: skip


def measure(nodes: int, pods: int, timeout: float) -> dict[str, float]:
    from nbkube.apiserver import serve
    from nbkube.controlplane.manager import ControlPlane
    from nbkube.controlplane.profiles import get_profile

    with tempfile.TemporaryDirectory(prefix="nbkube-bench-cp-") as tmp:
        gc.collect()
        before = rss_mib()
        api = Registry(open_store(f"sqlite:///{tmp}/store.db"))
        server = serve(api, folder=os.path.join(tmp, "pki"))
        # Kubernetes' timings, except that the simulated nodes (which have no agents to renew their
        # Leases) stay Ready for the run: with the 40 s grace they would go NotReady and, 300 s
        # later, have their pods evicted and recreated while the reading is taken
        profile = get_profile("kubernetes", grace_period=3600.0)
        cp = ControlPlane(api, profile=profile, leader_elect=False)
        try:
            limit = max(110, -(-pods * 2 // max(1, nodes)))
            for i in range(nodes):
                node = _node(i, limit)
                status = node.pop("status")
                created = api.create(node)
                api.update_status({**created, "status": status})
            cp.start()  # after the nodes: the node controller writes to them too
            t0 = time.monotonic()
            left = pods
            i = 0
            while left > 0:
                api.create(_rc(i, min(REPLICAS, left)))
                left -= REPLICAS
                i += 1
            deadline = t0 + timeout
            # the scheduler's own count, not a list of every pod each time (which would cost more
            # CPU and memory than what is measured); the store is checked once, after the reading
            while "scheduler" not in cp.components and time.monotonic() < deadline:
                time.sleep(0.1)
            sched: Any = cp.components["scheduler"]
            while sched.stats.scheduled < pods and time.monotonic() < deadline:
                time.sleep(0.5)
            seconds = time.monotonic() - t0
            gc.collect()
            after = rss_mib()
            items, _ = api.list("Pod", "default")
            bound = sum(1 for p in items if (p.get("spec") or {}).get("nodeName"))
            del items
            if bound < pods:
                raise RuntimeError(f"only {bound} of {pods} pods bound within {timeout:g} s")
        finally:
            cp.stop()
            server.stop()
            api.close()
    return {"before": before, "after": after, "seconds": seconds}


def rows(quick: bool = False) -> list[Row]:
    nodes, pods = (100, 3000) if quick else (1000, 30000)
    m = measure(nodes, pods, 120 if quick else 800)
    return [
        Row(f"control-plane RSS, {nodes:,} sim nodes / {pods:,} pods", m["after"], "MiB",
            note=f"store, registry, API server, scheduler and every controller in one process; "
                 f"{m['before']:.0f} MiB before start; all pods created and bound in {m['seconds']:.0f} s"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=30000)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args(argv)
    m = measure(args.nodes, args.pods, args.timeout)
    print(f"{args.nodes} nodes / {args.pods} pods: RSS {m['after']:.0f} MiB ({m['before']:.0f} MiB before start),"
          f" created and bound in {m['seconds']:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
