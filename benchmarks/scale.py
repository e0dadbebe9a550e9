"""The control plane at scale, end to end, on simulated nodes in this process.

Rows:
- `e2e_deployment`: a Deployment of R replicas (10m CPU / 16Mi each) on N sim nodes through the
  whole control plane (registry, Deployment and ReplicaSet controllers, scheduler, node agents
  writing pod status), from the create to every pod Ready: pods/s. Baseline, same run, a fresh
  cluster of the same size: the same number of pods created straight into the registry with
  `spec.nodeName` already set (no controllers, no scheduler; node agents and registry only).
  Also the rate of the first and the last 10% of pods (the last should keep at least
  half the first's rate).
- `density`: N sim nodes started in one process (no pods, then P pods per node through a
  Deployment): time to all nodes Ready, process RSS per 1,000 nodes, pods/s. Published baseline:
  kwok's 1,000 nodes / 100,000 pods figure is a statement of capacity, not a time, so it is
  named in the note, not divided by.
- `list_pods`: a full list of all pods through the registry and through the informer cache
  (`Informer.list`), at the e2e run's pod count: seconds per list.

Every run is bounded by a timeout and a size; `--quick` keeps everything under a minute.

    python benchmarks/scale.py [--nodes 250] [--replicas 10000] [--density-nodes 1000]
                               [--pods-per-node 30] [--timeout 300] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import resource
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from common import Row  # noqa: E402

from nbkube.cluster import LocalCluster  # noqa: E402
from nbkube.controlplane.profiles import get_profile  # noqa: E402

NAMESPACE = "default"


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox",
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                        }
                    ]
                },
            },
        },
    }


def _ready(pod: dict[str, Any]) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


@dataclass
class ReadyCounter:
    """Counts pods that became Ready, from a watch of its own (not the cluster's informers)."""

    cluster: LocalCluster
    label: str
    times: list[float] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._watch = self.cluster.api.watch("Pod", NAMESPACE, label_selector=self.label)
        self._thread = threading.Thread(target=self._run, name="bench-ready-counter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ev = self._watch.next(0.25)
            if ev is None:
                continue
            uid = ev.object["metadata"].get("uid", "")
            if ev.type != "DELETED" and uid not in self._seen and _ready(ev.object):
                self._seen.add(uid)
                self.times.append(time.perf_counter())

    def wait(self, count: int, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if len(self._seen) >= count:
                return True
            time.sleep(0.1)
        return len(self._seen) >= count

    def stop(self) -> None:
        self._stop.set()
        self._watch.cancel()
        self._thread.join(5)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


PROFILE = "kubernetes"  # --profile: upstream's timings (10 s heartbeat, 40 s grace) by default


def _cluster(nodes: int, timeout: float) -> LocalCluster:
    c = LocalCluster(
        nodes=nodes,
        runtime="sim",
        store="memory",
        profile=get_profile(PROFILE),
        start=False,
        capacity={"cpu": "32", "memory": "256Gi", "pods": "250"},
    )
    c.start(timeout=timeout)
    return c


@dataclass
class E2E:
    nodes: int
    pods: int
    ready: int
    seconds: float
    first10: float  # pods/s over the first 10%
    last10: float
    startup_s: float
    not_ready_events: int = 0  # NodeNotReady events during the run: a node the load made flap


def _not_ready_events(c: LocalCluster) -> int:
    events, _ = c.api.list("Event")
    return sum(1 for e in events if e.get("reason") in ("NodeNotReady", "TaintManagerEviction"))


def _decile_rates(t0: float, times: list[float]) -> tuple[float, float]:
    n = len(times)
    if n < 10:
        return 0.0, 0.0
    times = sorted(times)
    k = n // 10
    first = k / max(1e-9, times[k - 1] - t0)
    last = k / max(1e-9, times[-1] - times[n - k - 1])
    return first, last


def e2e_deployment(nodes: int, replicas: int, timeout: float) -> E2E:
    t_start = time.perf_counter()
    with _cluster(nodes, timeout) as c:
        startup = time.perf_counter() - t_start
        counter = ReadyCounter(c, "app=bench")
        counter.start()
        t0 = time.perf_counter()
        c.api.create(_deployment("bench", replicas))
        counter.wait(replicas, timeout)
        elapsed = time.perf_counter() - t0
        counter.stop()
        ready = len(counter.times)
        first, last = _decile_rates(t0, counter.times)
        flaps = _not_ready_events(c)
    return E2E(nodes, replicas, ready, elapsed, first, last, startup, flaps)


def direct_pods(nodes: int, pods: int, timeout: float) -> E2E:
    """The baseline: pods written straight into the registry, already bound (`spec.nodeName`)."""
    t_start = time.perf_counter()
    with _cluster(nodes, timeout) as c:
        startup = time.perf_counter() - t_start
        names = sorted(c.agents)
        counter = ReadyCounter(c, "app=direct")
        counter.start()
        tmpl = _deployment("direct", 0)["spec"]["template"]
        t0 = time.perf_counter()
        for i in range(pods):
            c.api.create(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"direct-{i}", "namespace": NAMESPACE, "labels": {"app": "direct"}},
                    "spec": {**tmpl["spec"], "nodeName": names[i % len(names)]},
                }
            )
        counter.wait(pods, timeout)
        elapsed = time.perf_counter() - t0
        counter.stop()
        first, last = _decile_rates(t0, counter.times)
        return E2E(nodes, pods, len(counter.times), elapsed, first, last, startup)


def list_reads(nodes: int, pods: int, timeout: float) -> tuple[float, float, int]:
    """Seconds for one registry list and one informer-cache list of `pods` pods."""
    with _cluster(nodes, timeout) as c:
        names = sorted(c.agents)
        tmpl = _deployment("lst", 0)["spec"]["template"]
        for i in range(pods):
            c.api.create(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"lst-{i}", "namespace": NAMESPACE, "labels": {"app": "lst"}},
                    "spec": {**tmpl["spec"], "nodeName": names[i % len(names)]},
                }
            )
        t0 = time.perf_counter()
        items, _ = c.api.list("Pod", NAMESPACE)
        reg = time.perf_counter() - t0
        inf = c._agent_factory.informer("Pod")
        t0 = time.perf_counter()
        cached = inf.list()
        cache = time.perf_counter() - t0
        return reg, cache, min(len(items), len(cached))


@dataclass
class Density:
    nodes: int
    nodes_ready_s: float
    rss_mb_per_1000_nodes: float
    pods: int
    pods_ready: int
    pods_s: float
    threads: int
    rss_mb_with_pods: float = 0.0  # the whole process's RSS growth once every pod is Ready


def density(nodes: int, pods_per_node: int, timeout: float) -> Density:
    gc.collect()
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    c = _cluster(nodes, timeout)
    try:
        ready_s = time.perf_counter() - t0
        rss = _rss_mb() - rss0
        threads = threading.active_count()
        pods = nodes * pods_per_node
        ready = 0
        pods_s = 0.0
        if pods:
            counter = ReadyCounter(c, "app=dens")
            counter.start()
            t1 = time.perf_counter()
            c.api.create(_deployment("dens", pods))
            counter.wait(pods, timeout)
            pods_s = len(counter.times) / (time.perf_counter() - t1)
            counter.stop()
            ready = len(counter.times)
        total = _rss_mb() - rss0
        return Density(nodes, ready_s, rss * 1000 / nodes, pods, ready, pods_s, threads, total)
    finally:
        c.stop()


def _density_row(d: Density, name: str) -> Row:
    pods = (
        f"; {d.pods_ready}/{d.pods} pods Ready at {d.pods_s:.0f} pods/s, process RSS then "
        f"+{d.rss_mb_with_pods:.0f} MB (store, informers and nodes)"
        if d.pods
        else ""
    )
    return Row(
        name=name,
        value=d.nodes_ready_s,
        unit="s to all nodes Ready",
        samples=1,
        note=(
            f"{d.nodes} sim nodes in one process: RSS {d.rss_mb_per_1000_nodes:.0f} MB per 1,000 nodes, "
            f"{d.threads} threads{pods} (kwok publishes 1,000 nodes / 100,000 pods in one process)"
        ),
        extra=d.__dict__,
    )


def rows(quick: bool = False) -> list[Row]:
    return sized_rows(quick)


def sized_rows(quick: bool = False, **kw: Any) -> list[Row]:
    """`rows` with any size given by keyword (the command line's options)."""
    nodes = kw.get("nodes") or (20 if quick else 250)
    replicas = kw.get("replicas") or (500 if quick else 10_000)
    dnodes = kw.get("density_nodes") or (200 if quick else 5000)
    pod_nodes = 50 if quick else 1000  # the density run with pods: fewer nodes, 30 pods each
    ppn = kw.get("pods_per_node") if kw.get("pods_per_node") is not None else (2 if quick else 30)
    timeout = kw.get("timeout") or (60 if quick else 600)
    out: list[Row] = []
    e = e2e_deployment(nodes, replicas, timeout)
    b = direct_pods(nodes, replicas, timeout)
    rate = e.ready / e.seconds if e.seconds else 0.0
    base = b.ready / b.seconds if b.seconds else 0.0
    label = f"{replicas // 1000}k" if replicas >= 1000 else str(replicas)
    out.append(
        Row(
            name=f"e2e_deployment_{label}",
            value=rate,
            unit="pods/s",
            baseline="same pods created bound (nodeName set) straight into the registry",
            baseline_value=base,
            baseline_kind="same-run",
            samples=1,
            note=(
                f"{nodes} sim nodes, profile {PROFILE}: {e.ready}/{replicas} Ready in {e.seconds:.1f} s "
                f"(baseline {b.ready} in {b.seconds:.1f} s); first 10% {e.first10:.0f} pods/s, "
                f"last 10% {e.last10:.0f} pods/s; {e.not_ready_events} NodeNotReady/eviction events"
            ),
            extra={"e2e": e.__dict__, "direct": b.__dict__},
        )
    )
    reg, cache, n = list_reads(nodes, replicas, timeout)
    out.append(
        Row(
            name="list_pods",
            value=reg,
            unit="s",
            baseline="informer cache list of the same pods",
            baseline_value=cache,
            baseline_kind="same-run",
            samples=1,
            note=f"{n} pods: registry list {reg:.2f} s, informer cache {cache * 1000:.1f} ms",
        )
    )
    out.append(_density_row(_fresh_density(dnodes, 0, timeout), f"density_{dnodes}_nodes"))
    if ppn:
        out.append(
            _density_row(
                _fresh_density(pod_nodes, ppn, timeout), f"density_{pod_nodes}_nodes_{ppn}_pods_each"
            )
        )
    return out


def _fresh_density(nodes: int, pods_per_node: int, timeout: float) -> Density:
    """`density` in a process of its own: RSS growth measured on a heap the earlier runs of this
    process have not already grown (freed memory is reused, and would hide the nodes' cost)."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(density, (nodes, pods_per_node, timeout))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int)
    ap.add_argument("--replicas", type=int)
    ap.add_argument("--density-nodes", type=int)
    ap.add_argument("--pods-per-node", type=int)
    ap.add_argument("--timeout", type=float)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["e2e", "direct", "list", "density"])
    ap.add_argument("--profile", default="kubernetes", help="timing profile of the clusters (fast: 2 s grace)")
    a = ap.parse_args()
    global PROFILE
    PROFILE = a.profile
    if a.only == "e2e":
        print(e2e_deployment(a.nodes or 100, a.replicas or 2000, a.timeout or 300))
        return
    if a.only == "direct":
        print(direct_pods(a.nodes or 100, a.replicas or 2000, a.timeout or 300))
        return
    if a.only == "density":
        print(density(a.density_nodes or 250, a.pods_per_node or 0, a.timeout or 300))
        return
    if a.only == "list":
        print(list_reads(a.nodes or 100, a.replicas or 2000, a.timeout or 300))
        return
    for r in sized_rows(
        a.quick,
        nodes=a.nodes,
        replicas=a.replicas,
        density_nodes=a.density_nodes,
        pods_per_node=a.pods_per_node,
        timeout=a.timeout,
    ):
        print(f"{r.name}: {r.value:.4g} {r.unit} (ratio {r.ratio}) {r.note}")


if __name__ == "__main__":
    main()
