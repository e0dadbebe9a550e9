"""DaemonSet fan-out and PDB-checked eviction, each against its plain counterpart in the same run.

1. A DaemonSet on N sim nodes, from apply until `numberReady == N` (controller -> scheduler ->
   node agents), beside N bare pods given `nodeName` directly (no controller, no scheduler) on the
   same cluster until all are Ready: what placing daemon pods the upstream way (node affinity, then
   the scheduler) costs over binding them by hand.
2. Evictions through `Registry.evict` of pods covered by a PodDisruptionBudget that allows them
   (a budget read, a compare-and-swap status write, then the delete) beside plain deletes of as
   many pods: what honouring budgets costs per eviction.

    python benchmarks/daemonset.py [--quick]
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
from nbkube.registry.registry import Registry  # noqa: E402
from nbkube.store import open_store  # noqa: E402

DAEMONSET = """apiVersion: apps/v1
kind: DaemonSet
metadata: {name: bench}
spec:
  selector: {matchLabels: {app: bench}}
  template:
    metadata: {labels: {app: bench}}
    spec:
      containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
"""


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or []
    )


def _wait(cond: Any, timeout: float, what: str) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if cond():
            return time.perf_counter() - t0
        time.sleep(0.02)
    raise RuntimeError(f"not within {timeout}s: {what}")


def fan_out(nodes: int, timeout: float) -> tuple[float, float]:
    """(DaemonSet seconds, bare pinned pods seconds) on one sim cluster of `nodes` nodes."""
    with (
        tempfile.TemporaryDirectory() as data,
        LocalCluster(nodes=nodes, runtime="sim", store="memory", data_dir=data, profile="fast") as c,
    ):
        t0 = time.perf_counter()
        c.apply(DAEMONSET)

        def ds_ready() -> bool:
            return (c.api.get("DaemonSet", "bench", "default").get("status") or {}).get("numberReady") == nodes

        _wait(ds_ready, timeout, f"DaemonSet Ready on {nodes} nodes")
        ours = time.perf_counter() - t0
        names = [n["metadata"]["name"] for n in c.api.list("Node")[0]]
        t0 = time.perf_counter()
        for i, node in enumerate(names):
            c.api.create(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"pinned-{i}", "namespace": "default", "labels": {"app": "pinned"}},
                    "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]},
                }
            )

        def pinned_ready() -> bool:
            pods = c.api.list("Pod", "default", label_selector="app=pinned")[0]
            return len(pods) == nodes and all(_ready(p) for p in pods)

        _wait(pinned_ready, timeout, f"{nodes} pinned pods Ready")
        return ours, time.perf_counter() - t0


def _pods(api: Registry, prefix: str, count: int) -> list[str]:
    names = []
    for i in range(count):
        pod = api.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"{prefix}-{i}", "namespace": "default", "labels": {"app": prefix}},
                "spec": {"nodeName": "n", "containers": [{"name": "c", "image": "busybox"}]},
            }
        )
        pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        api.update_status(pod)
        names.append(pod["metadata"]["name"])
    return names


def evictions(count: int) -> tuple[float, float]:
    """(evictions/s with a budget allowing them all, plain deletes/s) on one in-memory registry."""
    api = Registry(open_store("sqlite://:memory:"))
    try:
        covered = _pods(api, "covered", count)
        plain = _pods(api, "plain", count)
        pdb = api.create(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": "b", "namespace": "default"},
                "spec": {"maxUnavailable": count, "selector": {"matchLabels": {"app": "covered"}}},
            }
        )
        pdb["status"] = {
            "observedGeneration": 1,
            "disruptionsAllowed": count,
            "currentHealthy": count,
            "desiredHealthy": 0,
            "expectedPods": count,
        }
        api.update_status(pdb)
        t0 = time.perf_counter()
        for name in covered:
            api.evict(name, "default")
        evict_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for name in plain:
            api.delete("Pod", name, "default")
        delete_s = time.perf_counter() - t0
        return count / evict_s, count / delete_s
    finally:
        api.close()


def rows(quick: bool = False) -> list[Row]:
    nodes, count = (5, 50) if quick else (30, 500)
    ours, pinned = fan_out(nodes, 60 if quick else 300)
    evict_rate, delete_rate = evictions(count)
    return [
        Row(f"DaemonSet Ready on {nodes} sim nodes (controller + scheduler)", ours, "s",
            f"{nodes} bare pods bound by nodeName, same cluster", pinned, "same-run", samples=1),
        Row(f"evictions/s honouring a PodDisruptionBudget ({count} pods)", evict_rate, "1/s",
            "plain pod deletes/s, same registry", delete_rate, "same-run", samples=count),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for row in rows(quick=args.quick):
        ratio = f"  ratio {row.ratio:.2f}" if row.ratio is not None else ""
        print(f"{row.name}: {row.value:.3f} {row.unit}  vs {row.baseline}: {row.baseline_value:.3f}{ratio}")


if __name__ == "__main__":
    main()
