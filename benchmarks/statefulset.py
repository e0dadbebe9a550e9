"""StatefulSet start-up: OrderedReady and Parallel, with and without per-pod claims, beside a
ReplicaSet of the same size, all on one LocalCluster of 3 simulated nodes in the same run.

What it shows: the cost of ordering (OrderedReady makes pod i+1 only once pod i is Running and
Ready, so its start-up is the sum of the pods' start latencies rather than their maximum) and of
storage (a claim per pod, provisioned by the local-path provisioner on the node the scheduler
picked, before the pod may bind). The baseline is a ReplicaSet of N pods from the same template.
Each figure is seconds from the create to N pods Ready.

    python benchmarks/statefulset.py [--replicas 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from common import Row  # noqa: E402

from nbkube.cluster import LocalCluster  # noqa: E402

_TIMEOUT = 300.0


def _template(app: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]},
    }


def _ready(cluster: LocalCluster, app: str) -> int:
    pods = cluster.api.list("Pod", "default", label_selector=f"app={app}")[0]
    return sum(
        1
        for p in pods
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in (p.get("status") or {}).get("conditions") or [])
    )


def _time(cluster: LocalCluster, obj: dict[str, Any], app: str, replicas: int) -> float:
    t0 = time.perf_counter()
    cluster.api.create(obj)
    while time.perf_counter() - t0 < _TIMEOUT:
        if _ready(cluster, app) >= replicas:
            return time.perf_counter() - t0
        time.sleep(0.02)
    raise RuntimeError(f"{app}: {replicas} pods not Ready within {_TIMEOUT}s")


def _sts(app: str, replicas: int, policy: str, claims: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "serviceName": app,
        "podManagementPolicy": policy,
        "selector": {"matchLabels": {"app": app}},
        "template": _template(app),
    }
    if claims:
        spec["volumeClaimTemplates"] = [
            {"metadata": {"name": "data"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}}}
        ]  # fmt: skip
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": app, "namespace": "default"},
            "spec": spec}  # fmt: skip


def measure(replicas: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory() as data,
        LocalCluster(nodes=3, runtime="sim", store="memory", data_dir=data, name="bench-sts") as cluster,
    ):
        for app in ("svc-a", "svc-b", "svc-c", "svc-d"):
            cluster.api.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "namespace": "default"},
                                "spec": {"clusterIP": "None", "selector": {"app": app}, "ports": [{"port": 80}]}})  # fmt: skip
        # warm-up: the first pods of a cluster pay for its caches and threads, which is no one's cost here
        warm = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "warm", "namespace": "default"},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "warm"}}, "template": _template("warm")}}  # fmt: skip
        _time(cluster, warm, "warm", 1)
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs", "namespace": "default"},
              "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "rs"}}, "template": _template("rs")}}  # fmt: skip
        out["replicaset"] = _time(cluster, rs, "rs", replicas)
        out["parallel"] = _time(cluster, _sts("svc-a", replicas, "Parallel", False), "svc-a", replicas)
        out["ordered"] = _time(cluster, _sts("svc-b", replicas, "OrderedReady", False), "svc-b", replicas)
        out["parallel_claims"] = _time(cluster, _sts("svc-c", replicas, "Parallel", True), "svc-c", replicas)
        out["ordered_claims"] = _time(cluster, _sts("svc-d", replicas, "OrderedReady", True), "svc-d", replicas)
    return out


def rows(quick: bool = False) -> list[Row]:
    n = 10 if quick else 50
    m = measure(n)
    base = "ReplicaSet of the same pods, same cluster"
    return [
        Row(f"StatefulSet {n} pods Parallel, create -> all Ready, 3 sim nodes", m["parallel"], "s",
            base, m["replicaset"], "same-run", samples=1),
        Row(f"StatefulSet {n} pods OrderedReady, create -> all Ready, 3 sim nodes", m["ordered"], "s",
            base, m["replicaset"], "same-run", samples=1),
        Row(f"StatefulSet {n} pods Parallel + local-path claim each, create -> all Ready", m["parallel_claims"],
            "s", base, m["replicaset"], "same-run", samples=1),
        Row(f"StatefulSet {n} pods OrderedReady + local-path claim each, create -> all Ready",
            m["ordered_claims"], "s", base, m["replicaset"], "same-run", samples=1),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=50)
    args = parser.parse_args()
    m = measure(args.replicas)
    print(f"machine: {os.cpu_count()} cores; {args.replicas} pods on 3 sim nodes, create -> all Ready")
    for label, key in (
        ("ReplicaSet (baseline)", "replicaset"),
        ("StatefulSet Parallel", "parallel"),
        ("StatefulSet OrderedReady", "ordered"),
        ("StatefulSet Parallel + claims", "parallel_claims"),
        ("StatefulSet OrderedReady + claims", "ordered_claims"),
    ):
        print(f"{label:36} {m[key]:8.2f} s  {m[key] / m['replicaset']:6.2f}x ReplicaSet")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
