"""The control plane at scale, end to end, on simulated nodes.

Rows:
- `e2e_deployment`: a Deployment of R replicas (10m CPU / 16Mi each) on N sim nodes through the
  whole control plane (registry, Deployment and ReplicaSet controllers, scheduler, node agents
  writing pod status), from the create to every pod Ready: pods/s, with the scheduler and the sim
  nodes each in a process of their own (`LocalCluster(separate_processes=True)`, on the cluster's
  SQLite file), as kube-scheduler and kwok run apart from the controllers. Baseline, in turn with
  it (three pairs in a full run, the median of each): the scheduler alone on the same nodes
  (`scheduler_alone`: the same pods written pending first into a SQLite file, then only a scheduler
  binds them): the issue's ratio. The same row also reports the rate of the first and last 10%
  of pods, the CPU seconds of each process, the same Deployment with everything in one process (in
  memory) against the scheduler alone in memory, and the one-process bound: the scheduler alone
  plus the same pods created straight into the registry with `spec.nodeName` set (`direct_pods`:
  node agents and registry only), in turn.
- `density_5k_nodes`: N sim nodes (5,000) started in one process as `nbkube up` does (LocalCluster),
  then P pods per node (30: 150,000) through one Deployment: time to all nodes Ready, process RSS
  per 1,000 nodes, pods/s to all pods Ready and the rate of the first and the last 10%. The pods'
  part is bounded (`--pods-timeout`, 600 s): a run that does not finish reports how far it got and
  at what rate. Published baseline: kwok's README (1k nodes / 100k pods maintained, 20 pods/s).
  Then, as upstream's density test does after its saturation pods, 500 latency pods (one
  ReplicationController each, 5 a second) time a pod's start-up on the full cluster, p50/p90/p99
  from the controller's create to Ready, against the 5 s SLO.
- `reads_150k_pods`: 150,000 pods in an in-memory registry served by the API server (bound to node
  names nothing runs): `kubectl get pods -A` (500-item chunks, server-side Table), every 500-item
  page through the registry, one registry list, `nbkube get pods -A`, `cluster.pods.df`; seconds.
- `list_pods`: a full list of all pods through the registry and through the informer cache
  (`Informer.list`), at the e2e run's pod count: seconds per list.

Every run is bounded by a timeout and a size; `--quick` keeps everything under a minute.

    python benchmarks/scale.py [--nodes 250] [--replicas 10000] [--density-nodes 5000]
                               [--pods-per-node 30] [--timeout 300]
                               [--pods-timeout 600] [--latency-pods 500] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import re
import resource
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from common import Row, percentile  # noqa: E402

from nbkube.client.eventsink import batch_events, stop_batching  # noqa: E402
from nbkube.client.informer import InformerFactory  # noqa: E402
from nbkube.clock import timestamp_or_none  # noqa: E402
from nbkube.cluster import LocalCluster  # noqa: E402
from nbkube.controlplane.profiles import get_profile  # noqa: E402
from nbkube.controlplane.scheduler import Scheduler  # noqa: E402
from nbkube.registry.admission_chain import default_admission_plugins  # noqa: E402
from nbkube.registry.registry import Registry  # noqa: E402
from nbkube.store import open_store  # noqa: E402

NAMESPACE = "default"
BATCH = 500  # pods per create_many: upstream's largest slow-start batch
CAPACITY = {"cpu": "32", "memory": "256Gi", "pods": "250"}
_SIM_NODE_STATUS = {
    "capacity": CAPACITY,
    "allocatable": CAPACITY,
    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
}


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
    label: str  # KEY=VALUE
    times: list[float] = field(default_factory=list)
    # per pod Ready, seconds from the first event that showed it (its create) and from the first
    # that showed it bound (spec.nodeName): the start-up latency, and the node side's share of it
    startup: list[float] = field(default_factory=list)
    bound_to_ready: list[float] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)
    _created: dict[str, float] = field(default_factory=dict)
    _bound: dict[str, float] = field(default_factory=dict)
    _label: tuple[str, str] = ("", "")
    _stop: threading.Event = field(default_factory=threading.Event)
    # with `name_label`: when each pod became Ready, by that label's value (the latency pods' own
    # ReplicationController names them, so a pod's Ready is matched with its controller's create)
    name_label: str = ""
    ready_by_name: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        # shared: it only reads the events, so it takes the objects the informers already decoded
        # instead of decoding every pod version again (the measuring must not add to the measured);
        # the label is checked here, not by a selector watch, which would decode every pod's
        # previous version to tell whether it matched before
        key, _, value = self.label.partition("=")
        self._label = (key, value)
        self._watch = self.cluster.api.watch("Pod", NAMESPACE, shared=True)
        self._thread = threading.Thread(target=self._run, name="bench-ready-counter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        key, value = self._label
        while not self._stop.is_set():
            # what has arrived, in one go (a wait only when nothing has): the counter runs in the
            # controllers' process, and a wait per event was a tenth of that process's CPU
            events = self._watch.ready(1024)
            if not events:
                ev = self._watch.next(0.25)
                if ev is None:
                    continue
                events = [ev]
            now = time.perf_counter()  # every event of the batch was there by now
            for ev in events:
                meta = ev.object["metadata"]
                uid = meta.get("uid", "")
                if ev.type == "DELETED" or uid in self._seen or (meta.get("labels") or {}).get(key) != value:
                    continue
                self._created.setdefault(uid, now)
                if ev.object["spec"].get("nodeName"):
                    self._bound.setdefault(uid, now)
                if _ready(ev.object):
                    self._seen.add(uid)
                    self.times.append(now)
                    if self.name_label:
                        self.ready_by_name[str((meta.get("labels") or {}).get(self.name_label))] = now
                    self.startup.append(now - self._created.pop(uid))
                    self.bound_to_ready.append(now - self._bound.pop(uid, now))

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


def _rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


PROFILE = "kubernetes"  # --profile: upstream's timings (10 s heartbeat, 40 s grace) by default
STORE = "memory"  # --store: LocalCluster's store= ("auto" is `nbkube up`'s: a private etcd when installed)


def _cluster(nodes: int, timeout: float, separate: bool = False) -> LocalCluster:
    """A sim cluster; `separate`: scheduler and sim nodes in processes of their own (a memory store
    cannot be shared between processes: they then get the cluster folder's SQLite file)."""
    c = LocalCluster(
        nodes=nodes,
        runtime="sim",
        store="sqlite" if separate and STORE == "memory" else STORE,
        profile=get_profile(PROFILE),
        start=False,
        capacity=CAPACITY,
        separate_processes=separate,
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
    store: str = ""  # the cluster's store kind (memory, sqlite, etcd-private)
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds during the run, by process


def _not_ready_events(c: LocalCluster) -> int:
    events, _ = c.api.list("Event")
    return sum(1 for e in events if e.get("reason") in ("NodeNotReady", "TaintManagerEviction"))


def _not_ready_detail(
    c: LocalCluster, t0_wall: float
) -> tuple[tuple[float, float, float], tuple[float, float]]:
    """The heartbeat gaps the NodeNotReady events name ("no heartbeat for 41.2s"), as (min,
    median, max), and when the first and last came (seconds after `t0_wall`): a few gaps just over
    the grace period spread over the run is a node late now and then; many long ones at once, a
    process-wide stall."""
    events, _ = c.api.list("Event")
    gaps: list[float] = []
    times: list[float] = []
    for e in events:
        if e.get("reason") != "NodeNotReady":
            continue
        match = re.search(r"no heartbeat for ([0-9.]+)s", str(e.get("message") or ""))
        if match:
            gaps.append(float(match.group(1)))
        stamp = timestamp_or_none(e.get("lastTimestamp") or e.get("firstTimestamp"))
        if stamp is not None:
            times.append(stamp - t0_wall)
    if not gaps:
        return (0.0, 0.0, 0.0), (0.0, 0.0)
    gaps.sort()
    span = (min(times), max(times)) if times else (0.0, 0.0)
    return (gaps[0], gaps[len(gaps) // 2], gaps[-1]), span


def _unready(c: LocalCluster) -> dict[str, int]:
    """Where a run that did not finish stands: pods by stage, and nodes not Ready."""
    pods, _ = c.api.list("Pod", NAMESPACE)
    stages = {"pods": len(pods), "unscheduled": 0, "bound, not Ready": 0}
    for p in pods:
        if not p["spec"].get("nodeName"):
            stages["unscheduled"] += 1
        elif not _ready(p):
            stages["bound, not Ready"] += 1
    nodes, _ = c.api.list("Node")
    stages["nodes not Ready"] = sum(1 for n in nodes if not _ready(n))
    return stages


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat's first line."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def _busy_cores(seconds: float = 1.0) -> float:
    """How many cores' worth of CPU the whole machine used over the next `seconds`."""
    busy0, total0 = _cpu_ticks()
    time.sleep(seconds)
    busy1, total1 = _cpu_ticks()
    cores = os.cpu_count() or 1
    return cores * (busy1 - busy0) / max(1, total1 - total0)


def _settle(quiet: float = 0.15, max_wait: float = 30.0) -> float:
    """Wait, at most `max_wait` seconds, until the machine's other work (earlier benchmarks' Docker
    teardown, another user's job) uses less than `quiet` cores over a second; the last reading.
    Why: the e2e run keeps both cores busy and the scheduler alone about one, so work that is not
    ours slows the e2e run more than its baseline; each run starts on a quiet machine when one can
    be had, and the row says how busy it was when not."""
    deadline = time.monotonic() + max_wait
    busy = _busy_cores()
    while busy >= quiet and time.monotonic() < deadline:
        busy = _busy_cores()
    return round(busy, 2)


def _p50_p99(values: list[float]) -> tuple[float, float]:
    return (percentile(values, 50), percentile(values, 99)) if values else (0.0, 0.0)


def _decile_rates(t0: float, times: list[float]) -> tuple[float, float]:
    n = len(times)
    if n < 10:
        return 0.0, 0.0
    times = sorted(times)
    k = n // 10
    first = k / max(1e-9, times[k - 1] - t0)
    last = k / max(1e-9, times[-1] - times[n - k - 1])
    return first, last


def _cpu_seconds(c: LocalCluster) -> dict[str, float]:
    """CPU seconds (user + system) so far of this process ("controllers") and of each of the
    cluster's child processes (by part)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out = {"controllers": usage.ru_utime + usage.ru_stime}
    ticks = os.sysconf("SC_CLK_TCK")
    for part, process in c.components.items():
        if process.pid is None:
            continue
        with open(f"/proc/{process.pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
        out[part] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return out


def e2e_deployment(nodes: int, replicas: int, timeout: float, separate: bool = False) -> E2E:
    """`separate`: the scheduler and the sim nodes each in a process of their own, as `nbkube up
    --separate-processes` runs them (and as kube-scheduler and kwok run apart from the controllers)."""
    t_start = time.perf_counter()
    with _cluster(nodes, timeout, separate) as c:
        startup = time.perf_counter() - t_start
        counter = ReadyCounter(c, "app=bench")
        counter.start()
        cpu0 = _cpu_seconds(c)
        t0 = time.perf_counter()
        c.api.create(_deployment("bench", replicas))
        counter.wait(replicas, timeout)
        elapsed = time.perf_counter() - t0
        cpu1 = _cpu_seconds(c)
        cpu = {part: round(cpu1[part] - cpu0.get(part, 0.0), 2) for part in cpu1}
        counter.stop()
        ready = len(counter.times)
        first, last = _decile_rates(t0, counter.times)
        flaps = _not_ready_events(c)
        store = c.store_kind
    return E2E(nodes, replicas, ready, elapsed, first, last, startup, flaps, store, cpu)


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
        # in batches of BATCH through create_many, as the ReplicaSet controller's slow-start
        # batches are written: the baseline gets the same one-transaction-per-batch store path
        for start in range(0, pods, BATCH):
            c.api.create_many(
                [
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {
                            "name": f"direct-{i}",
                            "namespace": NAMESPACE,
                            "labels": {"app": "direct"},
                        },
                        "spec": {**tmpl["spec"], "nodeName": names[i % len(names)]},
                    }
                    for i in range(start, min(pods, start + BATCH))
                ]
            )
        counter.wait(pods, timeout)
        elapsed = time.perf_counter() - t0
        counter.stop()
        first, last = _decile_rates(t0, counter.times)
        return E2E(nodes, pods, len(counter.times), elapsed, first, last, startup)


@dataclass
class SchedulerAlone:
    nodes: int
    pods: int
    bound: int
    seconds: float


def scheduler_alone(nodes: int, pods: int, timeout: float, store: str = "memory") -> SchedulerAlone:
    """The issue's second baseline: the scheduler alone on the same nodes. Nodes shaped as the sim
    nodes register (same allocatable) and `pods` pending pods of the e2e template are written
    first into an in-memory registry (the e2e's store); then a Scheduler with its informers starts
    and the clock runs until every pod is bound. No controllers, no node agents, no Ready. The
    registry has the cluster's admission chain and Event batching, so the scheduler's binds and
    Events cost here what they cost inside the e2e run. `store`: memory, or sqlite (a SQLite file
    in a fresh folder: the store of an e2e run with the scheduler in a process of its own)."""
    if store not in ("memory", "sqlite"):
        raise ValueError(f"scheduler_alone: store must be memory or sqlite, got {store!r}")
    folder = tempfile.mkdtemp(prefix="nbkube-bench-") if store == "sqlite" else ""
    url = f"sqlite://{folder}/store.db" if folder else "sqlite://:memory:"
    api = Registry(open_store(url), admission=default_admission_plugins())
    try:
        for i in range(nodes):
            name = f"sim-{i:05d}"
            created = api.create(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                    "spec": {},
                }
            )
            api.update_status({**created, "status": _SIM_NODE_STATUS})
        tmpl = _deployment("alone", 0)["spec"]["template"]
        for start in range(0, pods, BATCH):
            api.create_many(
                [
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {
                            "name": f"alone-{i}",
                            "namespace": NAMESPACE,
                            "labels": {"app": "alone"},
                        },
                        "spec": tmpl["spec"],
                    }
                    for i in range(start, min(pods, start + BATCH))
                ]
            )
        factory = InformerFactory(api)
        sched = Scheduler(api, factory)
        batch_events(api)
        gc.collect()
        t0 = time.perf_counter()
        factory.start_all()
        sched.start()
        try:
            deadline = t0 + timeout
            while sched.stats.scheduled < pods and time.perf_counter() < deadline:
                time.sleep(0.01)
            elapsed = time.perf_counter() - t0
        finally:
            sched.stop()
            factory.stop_all()
        bound = sum(1 for p in api.list("Pod", NAMESPACE)[0] if p["spec"].get("nodeName"))
        return SchedulerAlone(nodes, pods, bound, elapsed)
    finally:
        stop_batching(api)
        api.close()
        api.store.close()
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


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
class Reads:
    pods: int
    create_s: float  # writing them (registry creates, bound to nodes that do not run them)
    registry_list_s: float  # one list of every pod (the store decodes each)
    paged_list_s: float  # every 500-item page in turn, as the API server reads for kubectl
    kubectl_s: float  # `kubectl get pods -A`: 500-item chunks, server-side Table rows
    kubectl_rows: int
    nbkube_get_s: float  # `nbkube --kubeconfig K get pods -A` (the CLI over the API server)
    df_s: float  # `cluster.pods.df` (the notebook's view: a registry list into a DataFrame)


def reads(pods: int, timeout: float) -> Reads:
    """`pods` pods in an in-memory registry served by the API server; time each way of reading
    them all. The pods are bound to node names nothing runs: reads are what is measured."""
    import subprocess
    import tempfile

    from nbkube.apiserver import serve
    from nbkube.notebook.views import ClusterViews
    from nbkube.registry.registry import Registry
    from nbkube.store import open_store

    registry = Registry(open_store("sqlite://:memory:"))
    tmpl = _deployment("rd", 0)["spec"]["template"]
    t0 = time.perf_counter()
    for i in range(pods):
        registry.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"rd-{i:06d}", "namespace": NAMESPACE, "labels": {"app": "rd"}},
                "spec": {**tmpl["spec"], "nodeName": f"node-{i % 5000}"},
            }
        )
    create_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    items, _ = registry.list("Pod")
    registry_list_s = time.perf_counter() - t0
    assert len(items) == pods
    del items
    t0 = time.perf_counter()
    seen, token = 0, ""
    while True:
        page = registry.list_page("Pod", limit=500, continue_token=token)
        seen += len(page.items)
        token = page.continue_token
        if not token:
            break
    paged_list_s = time.perf_counter() - t0
    assert seen == pods
    t0 = time.perf_counter()
    df = ClusterViews(registry).pods.df
    df_s = time.perf_counter() - t0
    assert len(df) == pods
    with tempfile.TemporaryDirectory(prefix="nbkube-scale-") as folder:
        server = serve(registry, folder=os.path.join(folder, "pki"))
        try:
            kubeconfig = server.write_kubeconfig(os.path.join(folder, "kubeconfig"))
            env = {**os.environ, "KUBECONFIG": kubeconfig}
            t0 = time.perf_counter()
            out = subprocess.run(
                ["kubectl", "get", "pods", "-A", "--no-headers"],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=True,
            ).stdout
            kubectl_s = time.perf_counter() - t0
            rows = len(out.splitlines())
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "nbkube.cli", "--kubeconfig", kubeconfig, "get", "pods", "-A"],
                env={**env, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..")},
                capture_output=True,
                text=True,
                timeout=timeout,
                check=True,
            )
            nbkube_get_s = time.perf_counter() - t0
        finally:
            server.stop()
    registry.close()
    return Reads(pods, create_s, registry_list_s, paged_list_s, kubectl_s, rows, nbkube_get_s, df_s)


def _reads_row(r: Reads) -> Row:
    return Row(
        name=f"reads_{r.pods // 1000}k_pods" if r.pods >= 1000 else f"reads_{r.pods}_pods",
        value=r.kubectl_s,
        unit="s for kubectl get pods -A",
        baseline="one registry list of the same pods, no paging, no HTTP, no table",
        baseline_value=r.registry_list_s,
        baseline_kind="same-run",
        samples=1,
        note=(
            f"{r.pods} pods ({r.kubectl_rows} rows printed): kubectl get pods -A {r.kubectl_s:.1f} s "
            f"(500-item chunks, server-side Table); every 500-item page through the registry "
            f"{r.paged_list_s:.1f} s; one registry list {r.registry_list_s:.1f} s; nbkube get pods -A "
            f"{r.nbkube_get_s:.1f} s; cluster.pods.df {r.df_s:.1f} s"
        ),
        extra=r.__dict__,
    )


@dataclass
class Density:
    nodes: int
    nodes_ready_s: float
    rss_mb_per_1000_nodes: float
    pods: int
    pods_ready: int
    pods_s: float
    threads: int
    rss_mb_with_pods: float = 0.0  # the whole process's RSS growth once every pod is Ready (or at the bound)
    store: str = "memory"
    store_rss_mb: float = 0.0  # a private etcd's RSS then (0: the store lives in this process)
    pods_seconds: float = 0.0  # from the Deployment's create to the last pod Ready, or to the bound
    first10: float = 0.0  # pods/s over the first 10% of the pods that became Ready
    last10: float = 0.0  # and over the last 10% of them
    finished: bool = True  # every pod Ready within the time bound
    not_ready_events: int = 0  # NodeNotReady/eviction events: nodes the load made flap
    unready_at_end: dict[str, int] = field(default_factory=dict)  # where the pods not Ready were
    # for the NodeNotReady events: the heartbeat gaps they name (min, median, max seconds) and
    # the seconds into the pods' part when the first and the last came
    not_ready_gaps: tuple[float, float, float] = (0.0, 0.0, 0.0)
    not_ready_span: tuple[float, float] = (0.0, 0.0)
    # pod start-up latency (create seen -> Ready seen) p50/p99, and its part from bound to Ready
    pod_startup_s: tuple[float, float] = (0.0, 0.0)
    bound_to_ready_s: tuple[float, float] = (0.0, 0.0)
    # then, on the saturated cluster, pods created one at a time (see `latency_pods`)
    latency: Latency | None = None


@dataclass
class Latency:
    """Pod start-up latency as upstream's density test measures it against its 5 s SLO: on the
    cluster full of saturation pods, one ReplicationController of one replica after another, at
    a rate the cluster keeps up with; p50/p90/p99 seconds."""

    pods: int
    per_second: float
    ready: int
    create_to_ready_s: tuple[float, float, float]  # the controller's create -> its pod seen Ready
    pod_to_ready_s: tuple[float, float, float]  # the pod's create seen -> Ready seen
    bound_to_ready_s: tuple[float, float, float]  # the node side's part


LATENCY_RATE = 5.0  # latency pods created per second: upstream's density test ("~5 pods/sec")
LATENCY_TIMEOUT = 60.0  # after the last create, for the stragglers


def _p50_p90_p99(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return (0.0, 0.0, 0.0)
    return (percentile(values, 50), percentile(values, 90), percentile(values, 99))


def latency_pods(c: LocalCluster, count: int, per_second: float = LATENCY_RATE) -> Latency:
    """`count` ReplicationControllers of one pod each (upstream's latency pods), one every
    1/`per_second` s, each pod's start-up timed from its controller's create to Ready."""
    counter = ReadyCounter(c, "type=latency-pod", name_label="name")
    counter.start()
    created: dict[str, float] = {}
    spec = _deployment("latency", 0)["spec"]["template"]["spec"]
    try:
        start = time.perf_counter()
        for i in range(count):
            name = f"latency-pod-{i}"
            labels = {"type": "latency-pod", "name": name}
            # paced from the start, not from the last create: a slow create does not slow the rate
            time.sleep(max(0.0, start + i / per_second - time.perf_counter()))
            created[name] = time.perf_counter()
            c.api.create(
                {
                    "apiVersion": "v1",
                    "kind": "ReplicationController",
                    "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
                    "spec": {
                        "replicas": 1,
                        "selector": labels,
                        "template": {"metadata": {"labels": labels}, "spec": spec},
                    },
                }
            )
        counter.wait(count, LATENCY_TIMEOUT)
    finally:
        counter.stop()
    waits = [counter.ready_by_name[n] - t for n, t in created.items() if n in counter.ready_by_name]
    return Latency(
        count,
        per_second,
        len(waits),
        _p50_p90_p99(waits),
        _p50_p90_p99(counter.startup),
        _p50_p90_p99(counter.bound_to_ready),
    )


def density(
    nodes: int, pods_per_node: int, timeout: float, pods_timeout: float | None = None, latency: int = 0
) -> Density:
    """`nodes` sim nodes, then `pods_per_node` pods each through one Deployment. `pods_timeout`
    bounds the pods' part: a run that does not finish reports how far it got, and at what rate.
    Once all are Ready, `latency` latency pods (`latency_pods`) time a new pod's start-up on the
    full cluster."""
    gc.collect()
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    c = _cluster(nodes, timeout)
    try:
        ready_s = time.perf_counter() - t0
        rss = _rss_mb() - rss0
        threads = threading.active_count()
        pods = nodes * pods_per_node
        out = Density(nodes, ready_s, rss * 1000 / nodes, pods, 0, 0.0, threads)
        if pods:
            counter = ReadyCounter(c, "app=dens")
            counter.start()
            t1 = time.perf_counter()
            t1_wall = time.time()
            c.api.create(_deployment("dens", pods))
            out.finished = counter.wait(pods, pods_timeout or timeout)
            counter.stop()
            # RSS now, before this benchmark lists every Event below (a heap it would grow itself)
            out.rss_mb_with_pods = _rss_mb() - rss0
            out.store_rss_mb = _rss_mb(c.etcd.proc.pid) if c.etcd is not None else 0.0
            times = sorted(counter.times)
            out.pods_ready = len(times)
            end = times[-1] if out.finished and times else time.perf_counter()
            out.pods_seconds = end - t1
            out.pods_s = out.pods_ready / out.pods_seconds if out.pods_seconds else 0.0
            out.first10, out.last10 = _decile_rates(t1, times)
            out.pod_startup_s = _p50_p99(counter.startup)
            out.bound_to_ready_s = _p50_p99(counter.bound_to_ready)
            out.not_ready_events = _not_ready_events(c)
            out.not_ready_gaps, out.not_ready_span = _not_ready_detail(c, t1_wall)
            if not out.finished:
                out.unready_at_end = _unready(c)
            elif latency:
                out.latency = latency_pods(c, latency)
        if not pods:
            out.rss_mb_with_pods = _rss_mb() - rss0
        out.store = STORE
        return out
    finally:
        c.stop()


KWOK_SOURCE = "https://github.com/kubernetes-sigs/kwok#why-kwok (README: 1k nodes and 100k pods; 20 pods/s)"


def _density_row(d: Density, name: str) -> Row:
    nodes = (
        f"{d.nodes} sim nodes in one process Ready in {d.nodes_ready_s:.1f} s, RSS "
        f"{d.rss_mb_per_1000_nodes:.0f} MB per 1,000 nodes, {d.threads} threads"
    )
    if not d.pods:
        return Row(
            name=name,
            value=d.nodes_ready_s,
            unit="s to all nodes Ready",
            samples=1,
            note=nodes,
            extra=d.__dict__,
        )
    how = "all Ready" if d.finished else f"bounded at {d.pods_seconds:.0f} s"
    return Row(
        name=name,
        value=d.pods_s,
        unit="pods/s",
        baseline="kwok's published creation rate (1k nodes / 100k pods maintained)",
        baseline_value=20.0,
        baseline_kind="published",
        source=KWOK_SOURCE,
        samples=1,
        note=(
            f"{nodes}; {d.pods_ready}/{d.pods} pods Ready in {d.pods_seconds:.0f} s ({how}) through one "
            f"Deployment; first 10% {d.first10:.0f} pods/s, last 10% {d.last10:.0f} pods/s; pod start-up "
            f"(create to Ready) p50 {d.pod_startup_s[0]:.1f} s, p99 {d.pod_startup_s[1]:.1f} s, of which bound to "
            f"Ready p50 {d.bound_to_ready_s[0]:.1f} s, p99 {d.bound_to_ready_s[1]:.1f} s; process RSS "
            f"then +{d.rss_mb_with_pods:.0f} MB ("
            + (
                f"informers and nodes; store: a private etcd of {d.store_rss_mb:.0f} MB RSS"
                if d.store_rss_mb
                else f"store {d.store}, informers and nodes"
            )
            + f"); {d.not_ready_events} "
            f"NodeNotReady/eviction events"
            + (
                f" (heartbeat gaps min/median/max {d.not_ready_gaps[0]:.0f}/{d.not_ready_gaps[1]:.0f}/"
                f"{d.not_ready_gaps[2]:.0f} s, from {d.not_ready_span[0]:.0f} to {d.not_ready_span[1]:.0f} s)"
                if d.not_ready_events
                else ""
            )
            + (f"; at the bound: {d.unready_at_end}" if d.unready_at_end else "")
            + _latency_note(d)
        ),
        extra={**d.__dict__, "latency": d.latency.__dict__ if d.latency else None},
    )


def _latency_note(d: Density) -> str:
    lat = d.latency
    if lat is None:
        return "; latency pods: not run (the saturation pods did not all become Ready)" if d.pods else ""

    def ms(v: tuple[float, float, float]) -> str:
        return "/".join(f"{x * 1000:.0f}" for x in v)

    return (
        f"; then on the full cluster {lat.pods} latency pods (one ReplicationController each, "
        f"{lat.per_second:g}/s, as upstream's density test), {lat.ready} Ready: start-up from the "
        f"controller's create to Ready p50/p90/p99 {ms(lat.create_to_ready_s)} ms (upstream's SLO: "
        f"5,000 ms), from the pod's create {ms(lat.pod_to_ready_s)} ms, bound to Ready "
        f"{ms(lat.bound_to_ready_s)} ms"
    )


def rows(quick: bool = False) -> list[Row]:
    return sized_rows(quick)


def sized_rows(quick: bool = False, **kw: Any) -> list[Row]:
    """`rows` with any size given by keyword (the command line's options)."""
    nodes = kw.get("nodes") or (20 if quick else 250)
    replicas = kw.get("replicas") or (500 if quick else 10_000)
    dnodes = kw.get("density_nodes") or (200 if quick else 5000)
    ppn = kw.get("pods_per_node") if kw.get("pods_per_node") is not None else (2 if quick else 30)
    timeout = kw.get("timeout") or (60 if quick else 600)
    out: list[Row] = []
    # each in a fresh process: a run after another inherits its grown heap and collector state
    # (the baseline measured 7.3 s after the e2e run and 4.8-5.2 s on its own)
    # The VM's speed drifts by a tenth within minutes: the headline pair runs `pairs` times in
    # turn (e2e, then the scheduler alone) and each is its median run
    pairs = 1 if quick else 5
    runs: list[tuple[E2E, SchedulerAlone]] = []
    background: list[tuple[float, float]] = []  # busy cores before each run of a pair
    for _ in range(pairs):
        before_e2e = _settle()
        e2e_run = _in_own_process(e2e_deployment, nodes, replicas, timeout, True)
        before_alone = _settle()
        runs.append((e2e_run, _in_own_process(scheduler_alone, nodes, replicas, timeout, "sqlite")))
        background.append((before_e2e, before_alone))
    e = sorted((r[0] for r in runs), key=lambda x: x.seconds)[len(runs) // 2]
    s = sorted((r[1] for r in runs), key=lambda x: x.seconds)[len(runs) // 2]
    pair_ratios = [alone_run.seconds / e2e_run.seconds for e2e_run, alone_run in runs if e2e_run.seconds]
    one = _in_own_process(e2e_deployment, nodes, replicas, timeout, False)
    s1 = _in_own_process(scheduler_alone, nodes, replicas, timeout, "memory" if STORE == "memory" else "sqlite")
    b = _in_own_process(direct_pods, nodes, replicas, timeout)
    rate = e.ready / e.seconds if e.seconds else 0.0
    alone = s.bound / s.seconds if s.seconds else 0.0
    one_rate = one.ready / one.seconds if one.seconds else 0.0
    alone1 = s1.bound / s1.seconds if s1.seconds else 0.0
    label = f"{replicas // 1000}k" if replicas >= 1000 else str(replicas)
    # One process, one interpreter lock: end to end does at least the scheduler's work and the
    # node side's (the direct baseline's) one after the other, so its ratio to the scheduler alone
    # cannot pass alone / (alone + direct) however the two interleave
    bound = s1.seconds / (s1.seconds + b.seconds) if s1.seconds and b.seconds else 0.0
    cpu = sum(e.cpu_s.values())
    # Separate processes on C cores: the run takes at least its CPU seconds / C
    cores = os.cpu_count() or 1
    out.append(
        Row(
            name=f"e2e_deployment_{label}",
            value=rate,
            unit="pods/s",
            baseline="the scheduler alone on the same nodes, over a SQLite file",
            baseline_value=alone,
            baseline_kind="same-run",
            samples=pairs,
            note=(
                f"{nodes} sim nodes, profile {PROFILE}, scheduler and sim nodes in processes of their "
                f"own (separate_processes), store {e.store}; median of {pairs} run(s) each, in turn "
                f"(e2e {', '.join(f'{r[0].seconds:.1f}' for r in runs)} s; scheduler alone "
                f"{', '.join(f'{r[1].seconds:.1f}' for r in runs)} s; ratio of each pair "
                f"{', '.join(f'{x:.2f}' for x in pair_ratios)}; other work on the machine before each, in "
                f"cores: {', '.join(f'{a:.2f}/{b:.2f}' for a, b in background)}): "
                f"{e.ready}/{replicas} Ready in {e.seconds:.1f} s; "
                f"first 10% {e.first10:.0f} pods/s, last 10% {e.last10:.0f} pods/s; "
                f"{e.not_ready_events} NodeNotReady/eviction events; CPU s by process "
                f"{', '.join(f'{k} {v:.1f}' for k, v in e.cpu_s.items())} ({cpu:.1f} s: at least "
                f"{cpu / cores:.1f} s on {cores} cores); the scheduler alone bound {s.bound} pending "
                f"pods in {s.seconds:.1f} s ({alone:.0f} pods/s). All in one process (store {one.store}): "
                f"{one.ready} Ready in {one.seconds:.1f} s, {one_rate / alone1 if alone1 else 0:.2f}x of "
                f"the scheduler alone on that store ({s1.seconds:.1f} s), against a one-process bound of "
                f"{bound:.2f}x (scheduler alone + the same pods created bound, {b.seconds:.1f} s, in turn)"
            ),
            extra={
                "e2e": e.__dict__,
                "scheduler_alone": s.__dict__,
                "pairs": [
                    {"e2e_s": r.seconds, "scheduler_alone_s": a.seconds, "busy_before": busy}
                    for (r, a), busy in zip(runs, background, strict=True)
                ],
                "one_process": one.__dict__,
                "one_process_scheduler_alone": s1.__dict__,
                "direct": b.__dict__,
                "one_process_bound": bound,
            },
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
    read_pods = kw.get("read_pods") or (2000 if quick else 150_000)
    out.append(_reads_row(_in_own_process(reads, read_pods, timeout)))
    label = f"{dnodes // 1000}k" if dnodes >= 1000 and dnodes % 1000 == 0 else str(dnodes)
    bound = kw.get("pods_timeout") or (60 if quick else 600)
    # one run: the nodes' start (time, RSS) and then their pods, bounded by `bound`
    # upstream times 500 latency pods at least (clusterloader2's MIN_LATENCY_PODS)
    latency_kw = kw.get("latency_pods")
    latency = int(latency_kw) if latency_kw is not None else (20 if quick else 500)
    density_run = _fresh_density(dnodes, ppn or 0, timeout, bound, latency)
    out.append(_density_row(density_run, f"density_{label}_nodes"))
    return out


def _configure(profile: str, store: str) -> None:
    """Set this module's command-line choices (in a spawned process, which imports it afresh)."""
    global PROFILE, STORE
    PROFILE, STORE = profile, store


def _in_own_process(fn: Any, *args: Any) -> Any:
    """`fn(*args)` in a fresh process: its heap, its GIL, none of the earlier runs' threads; the
    same --profile and --store."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1, initializer=_configure, initargs=(PROFILE, STORE)) as pool:
        return pool.apply(fn, args)


def _fresh_density(
    nodes: int, pods_per_node: int, timeout: float, pods_timeout: float | None, latency: int = 0
) -> Density:
    """`density` in a process of its own: RSS growth measured on a heap the earlier runs of this
    process have not already grown (freed memory is reused, and would hide the nodes' cost)."""
    return _in_own_process(density, nodes, pods_per_node, timeout, pods_timeout, latency)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int)
    ap.add_argument("--replicas", type=int)
    ap.add_argument("--density-nodes", type=int)
    ap.add_argument("--pods-per-node", type=int)
    ap.add_argument("--timeout", type=float)
    ap.add_argument("--pods-timeout", type=float, help="bound on the density run's pods (default 600 s)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--read-pods", type=int, help="pods for the reads row (default 150,000)")
    ap.add_argument(
        "--latency-pods", type=int, help="latency pods after the density run's (default 500; 0: none)"
    )
    ap.add_argument("--only", choices=["e2e", "direct", "scheduler", "list", "density", "reads"])
    ap.add_argument(
        "--profile", default="kubernetes", help="timing profile of the clusters (fast: 2 s grace)"
    )
    ap.add_argument(
        "--store",
        default="memory",
        choices=["memory", "sqlite", "auto"],
        help="the clusters' store (auto: `nbkube up`'s, a private etcd process when etcd is installed)",
    )
    ap.add_argument(
        "--separate-processes",
        action="store_true",
        help="--only e2e/scheduler: scheduler and sim nodes in processes of their own (and the scheduler "
        "alone on a SQLite file, the store such a cluster gets instead of memory)",
    )
    a = ap.parse_args()
    _configure(a.profile, a.store)
    if a.only == "e2e":
        print(e2e_deployment(a.nodes or 100, a.replicas or 2000, a.timeout or 300, a.separate_processes))
        return
    if a.only == "direct":
        print(direct_pods(a.nodes or 100, a.replicas or 2000, a.timeout or 300))
        return
    if a.only == "scheduler":
        print(scheduler_alone(a.nodes or 100, a.replicas or 2000, a.timeout or 300, "sqlite" if a.separate_processes else STORE))
        return
    if a.only == "density":
        print(
            density(
                a.density_nodes or 250,
                a.pods_per_node or 0,
                a.timeout or 300,
                a.pods_timeout,
                a.latency_pods or 0,
            )
        )
        return
    if a.only == "reads":
        print(reads(a.read_pods or 10_000, a.timeout or 300))
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
        pods_timeout=a.pods_timeout,
        read_pods=a.read_pods,
        latency_pods=a.latency_pods,
    ):
        print(f"{r.name}: {r.value:.4g} {r.unit} (ratio {r.ratio}) {r.note}")


if __name__ == "__main__":
    main()
