"""Scheduler throughput: pods/s scheduled and bound on simulated nodes, beside raw store writes.

The comparison figure is PUBLISHED, not measured here: upstream's scheduler_perf suite fails its
SchedulingBasic 5,000 nodes / 10,000 pods case below 680 pods/s (a threshold, see KUBE_SCHEDULER_SOURCE).
The headline runs use upstream's adaptive percentageOfNodesToScore (max(5, 50 - nodes/125) percent
of the nodes, at least 100: ~500 feasible nodes scored at 5,000), so they do the work kube-scheduler's
default configuration does; nbkube's own default (stop at 100 feasible nodes) is reported beside it.
For each node count, in one process and on a fresh SQLite file:
  1. N Node objects (Ready, allocatable cpu 32 / memory 256Gi / pods 110, more pods where needed)
     are created directly through the Registry, then P pending pods (100 owners of P/100 replicas,
     100m cpu / 128Mi each);
  2. a Scheduler with informers is started; the clock runs from start() until every pod is bound
     (so the informers' initial list of nodes and pods is included) - each bind is one CAS write
     plus a "Scheduled" Event write;
  3. the raw store rate is measured on the same store: P keys, one plain `store.update` each.
Then a 1,000 node / 30,000 pod run reports the process RSS of the scheduler and its informers
(benchmarks/control_plane.py measures the whole control plane).

Usage: python benchmarks/scheduler.py [--nodes 100,1000,5000] [--pods 10000] [--rss-pods 30000]
       [--no-rss] [--timeout 120] [--percentage adaptive|default|1-100] [--store-dir DIR]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass

from common import Row

from nbkube.client.informer import InformerFactory
from nbkube.controlplane.scheduler import Framework, Scheduler
from nbkube.controlplane.scheduler.framework import Percentage
from nbkube.registry.registry import Registry
from nbkube.store import open_store

KUBE_SCHEDULER_THRESHOLD = 680.0  # pods/s: a published threshold, not a measurement of this run
KUBE_SCHEDULER_SOURCE = (
    "kubernetes/kubernetes test/integration/scheduler_perf performance-config.yaml: "
    "SchedulingBasic 5000Nodes_10000Pods, threshold 680 pods/s"
)
OWNERS = 100


@dataclass
class CaseResult:
    nodes: int
    pods: int
    bound: int
    seconds: float
    pods_per_s: float
    cpu_seconds: float  # process CPU time (all threads) of the scheduling run
    store_writes_per_s: float
    max_per_node: int
    min_per_node: int
    setup_s: float


def _node(i: int, pods_limit: int) -> dict:
    name = f"sim-{i:05d}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "type": "sim"}},
        "spec": {},
        "status": {
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": str(pods_limit)},
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": str(pods_limit)},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }


def _pod(i: int) -> dict:
    owner = i % OWNERS
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"pod-{i:06d}",
            "namespace": "default",
            "labels": {"app": f"app-{owner}"},
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ReplicationController",
                    "name": f"app-{owner}",
                    "uid": f"00000000-0000-0000-0000-{owner:012d}",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                }
            ]
        },
    }


def _create_objects(api: Registry, nodes: int, pods: int) -> None:
    pods_limit = max(110, -(-pods * 2 // max(1, nodes)))
    for i in range(nodes):
        node = _node(i, pods_limit)
        status = node.pop("status")
        created = api.create(node)
        api.update_status({**created, "status": status})
    for i in range(pods):
        api.create(_pod(i))


def _raw_store_rate(api: Registry, count: int) -> float:
    store = api.store
    value = b'{"kind":"Bench","metadata":{"name":"x"},"spec":{"nodeName":""}}'
    revs = [store.create(f"/bench/key-{i:06d}", value) for i in range(count)]
    new = b'{"kind":"Bench","metadata":{"name":"x"},"spec":{"nodeName":"sim-00001"}}'
    t0 = time.perf_counter()
    for i, rev in enumerate(revs):
        store.update(f"/bench/key-{i:06d}", new, rev)
    return count / (time.perf_counter() - t0)


def _percentage(text: str | None) -> Percentage:
    if text in (None, "", "default"):
        return None
    if text == "adaptive":
        return "adaptive"
    return int(str(text))


def run_case(
    nodes: int, pods: int, store_dir: str, timeout: float, *, raw: bool = True, percentage: Percentage = None
) -> CaseResult:
    path = os.path.join(store_dir, f"sched-{nodes}-{pods}.db")
    if os.path.exists(path):
        os.unlink(path)
    api = Registry(open_store(f"sqlite:///{path}"))
    t_setup = time.perf_counter()
    _create_objects(api, nodes, pods)
    setup = time.perf_counter() - t_setup
    factory = InformerFactory(api)
    sched = Scheduler(api, factory, framework=Framework(percentage_of_nodes_to_score=percentage))
    gc.collect()
    t0 = time.perf_counter()
    c0 = time.process_time()
    deadline = t0 + timeout
    factory.start_all()
    sched.start()
    try:
        while sched.stats.scheduled < pods and time.perf_counter() < deadline:
            time.sleep(0.01)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
        bound = sched.stats.scheduled
    finally:
        sched.stop()
        factory.stop_all()
    items, _ = api.list("Pod", "default")
    per_node = Counter(p["spec"].get("nodeName") for p in items if p["spec"].get("nodeName"))
    bound_in_store = sum(per_node.values())
    if bound_in_store != bound:
        print(f"  warning: scheduler counted {bound} binds, store has {bound_in_store}", file=sys.stderr)
    rate = _raw_store_rate(api, pods) if raw else 0.0
    api.close()
    os.unlink(path)
    return CaseResult(
        nodes=nodes,
        pods=pods,
        bound=bound_in_store,
        seconds=elapsed,
        pods_per_s=bound_in_store / elapsed if elapsed > 0 else 0.0,
        cpu_seconds=cpu,
        store_writes_per_s=rate,
        max_per_node=max(per_node.values(), default=0),
        min_per_node=min((per_node.get(f"sim-{i:05d}", 0) for i in range(nodes)), default=0),
        setup_s=setup,
    )


def _rss_mib() -> tuple[float, float]:
    """(current VmRSS, peak VmHWM) of this process in MiB."""
    cur = peak = 0.0
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    cur = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return cur, peak


def rss_case(nodes: int, pods: int, store_dir: str, timeout: float) -> tuple[CaseResult, float, float, float]:
    path = os.path.join(store_dir, f"rss-{nodes}-{pods}.db")
    if os.path.exists(path):
        os.unlink(path)
    api = Registry(open_store(f"sqlite:///{path}"))
    _create_objects(api, nodes, pods)
    gc.collect()
    before, _ = _rss_mib()
    factory = InformerFactory(api)
    sched = Scheduler(api, factory)
    t0 = time.perf_counter()
    factory.start_all()
    sched.start()
    try:
        while sched.stats.scheduled < pods and time.perf_counter() < t0 + timeout:
            time.sleep(0.02)
        elapsed = time.perf_counter() - t0
        gc.collect()
        after, peak = _rss_mib()
        bound = sched.stats.scheduled
    finally:
        sched.stop()
        factory.stop_all()
        api.close()
        os.unlink(path)
    res = CaseResult(nodes, pods, bound, elapsed, bound / elapsed if elapsed else 0.0, 0.0, 0.0, 0, 0, 0.0)
    return res, before, after, peak


def rows(quick: bool = False) -> list[Row]:
    """benchmarks/run.py's figures: pods/s under upstream's adaptive scoring at each node count, and
    nbkube's default (100 feasible nodes) at the largest, in the same run."""
    counts, pods = ([100, 1000], 2000) if quick else ([100, 1000, 5000], 10_000)
    out: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            r = run_case(n, pods, tmp, 120.0 if quick else 300.0, percentage="adaptive")
            name = f"scheduling, {n:,} nodes / {pods:,} pods, adaptive percentageOfNodesToScore (upstream default)"
            if n == counts[-1]:
                note = "" if (n, pods) == (5000, 10_000) else "threshold is for 5,000 nodes / 10,000 pods"
                out.append(Row(name, r.pods_per_s, "pods/s", "kube-scheduler scheduler_perf threshold",
                               KUBE_SCHEDULER_THRESHOLD, "published", KUBE_SCHEDULER_SOURCE, samples=r.bound,
                               note=note))  # fmt: skip
                adaptive = r
            else:
                out.append(Row(name, r.pods_per_s, "pods/s", "raw store CAS update/s, same store (a bind's write alone)",
                               r.store_writes_per_s, "same-run", samples=r.bound))  # fmt: skip
        n = counts[-1]
        d = run_case(n, pods, tmp, 120.0 if quick else 300.0, raw=False, percentage=None)
        out.append(Row(f"scheduling, {n:,} nodes / {pods:,} pods, nbkube default (100 feasible nodes scored)",
                       d.pods_per_s, "pods/s", "adaptive percentage, same run", adaptive.pods_per_s,
                       "same-run", samples=d.bound))  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", default="100,1000,5000", help="comma-separated node counts")
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--rss-nodes", type=int, default=1_000)
    ap.add_argument("--rss-pods", type=int, default=30_000)
    ap.add_argument("--no-rss", action="store_true", help="skip the memory run")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per scheduling run")
    ap.add_argument(
        "--percentage",
        default="adaptive",
        help="percentage of nodes to score: 'adaptive' (upstream's default; this one's default), "
        "'default' (nbkube's: 100 feasible nodes) or 1-100",
    )
    ap.add_argument("--store-dir", default=None, help="where the SQLite files go (default: a temp dir)")
    args = ap.parse_args(argv)
    node_counts = [int(x) for x in args.nodes.split(",") if x.strip()]
    with tempfile.TemporaryDirectory(dir=args.store_dir) as tmp:
        print(f"scheduler benchmark: {args.pods} pods, SQLite file store, python {sys.version.split()[0]}")
        print(f"anchor (published, not measured here): {KUBE_SCHEDULER_SOURCE}")
        print(
            f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs"
        )
        print()
        hdr = (
            f"{'nodes':>6} {'pods':>6} {'bound':>6} {'secs':>7} {'pods/s':>8} {'pods/cpu-s':>10} {'store upd/s':>11} "
            f"{'pods/store':>10} {'vs 680':>7} {'pods/node':>10} {'setup s':>8}"
        )
        print(hdr)
        print("-" * len(hdr))
        for n in node_counts:
            r = run_case(n, args.pods, tmp, args.timeout, percentage=_percentage(args.percentage))
            ratio = r.pods_per_s / r.store_writes_per_s if r.store_writes_per_s else 0.0
            print(
                f"{r.nodes:>6} {r.pods:>6} {r.bound:>6} {r.seconds:>7.2f} {r.pods_per_s:>8.0f} "
                f"{r.bound / r.cpu_seconds if r.cpu_seconds else 0.0:>10.0f} "
                f"{r.store_writes_per_s:>11.0f} {ratio:>10.2f} {r.pods_per_s / KUBE_SCHEDULER_THRESHOLD:>7.2f} "
                f"{f'{r.min_per_node}-{r.max_per_node}':>10} {r.setup_s:>8.1f}",
                flush=True,
            )
        if not args.no_rss:
            print()
            res, before, after, peak = rss_case(args.rss_nodes, args.rss_pods, tmp, args.timeout * 3)
            print(
                f"memory at {args.rss_nodes} nodes / {args.rss_pods} pods: RSS {after:.0f} MiB "
                f"(peak {peak:.0f} MiB; {before:.0f} MiB before the control plane started), "
                f"{res.bound} bound at {res.pods_per_s:.0f} pods/s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
