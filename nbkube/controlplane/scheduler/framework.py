"""The scheduling framework: per-node bookkeeping, plugin protocols and the one-pod decision.

Why it exists: the Scheduler (scheduler.py) must decide where each pending pod goes in far less
than a millisecond even with thousands of nodes, and the rules themselves (resources, taints,
affinity, ports, spreading) should be small pure functions that tests call directly. So this
module holds
- `PodInfo`: what the plugins need from a pod, parsed once (requests, ports, tolerations, ...);
- `NodeInfo`: one node plus what is bound to it (summed requests, pod count, host ports, spread
  counters), kept up to date incrementally;
- `Snapshot`: all NodeInfos, updated from informer events (and by the scheduler's "assume" right
  after a bind), never rebuilt per pod;
- `FilterPlugin` / `ScorePlugin` protocols and `Framework.schedule_one`, which runs filters, then
  scores a sample of the feasible nodes, and returns a `Result` with the Kubernetes-style message.

Speed, and how it differs from a naive loop (upstream kube-scheduler does the same things):
- filters that look only at the node object ("static": readiness, cordon, taints, node selector /
  affinity) are evaluated once per distinct pod "static signature" and cached until a node's
  static fields change, so replicas of one controller cost nothing there;
- the remaining ("dynamic") filters run from a rotating start index and stop once enough feasible
  nodes are found, and only that sample is scored, as kube-scheduler's `percentageOfNodesToScore`
  does. Upstream's adaptive default (max(5, 50 - nodes/125) percent, at least 100 nodes: 420 of
  1,000 nodes) was tuned for Go; here each scored node costs about a microsecond, so nbkube's
  default is upstream's floor: 100 feasible nodes (all of them below 100 nodes). Pass
  `percentage_of_nodes_to_score` (1-100; None = this default, "adaptive" = upstream's formula) to
  score more. A pod that fits nowhere is checked against every node, so its message counts every
  node.
"""

from __future__ import annotations

import itertools
import json
import threading
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain
from typing import Any, Literal, Protocol

from nbkube.api.meta import Obj, key_of
from nbkube.api.quantity import parse_cpu, parse_memory, parse_quantity

__all__ = [
    "PodInfo",
    "NodeInfo",
    "Snapshot",
    "FilterPlugin",
    "ScorePlugin",
    "Result",
    "Framework",
    "schedule_one",
    "failure_message",
    "MAX_NODE_SCORE",
    "DEFAULT_MILLI_CPU_REQUEST",
    "DEFAULT_MEMORY_REQUEST",
]

MAX_NODE_SCORE = 100
# What upstream assumes for scoring (never for fitting) a container that requests nothing, so that
# best-effort pods still spread instead of piling onto the first node.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


@lru_cache(maxsize=4096)
def _cpu(q: str) -> int:
    return parse_cpu(q)


@lru_cache(maxsize=4096)
def _mem(q: str) -> int:
    return parse_memory(q)


def _quantity(fn: Any, value: Any) -> int:
    # Quantities repeat a lot (every replica asks for the same "100m"): parse each text once.
    if isinstance(value, str):
        return int(fn(value))
    return int(fn(str(value)))


def _requests(container: Mapping[str, Any]) -> tuple[int, int]:
    req = (container.get("resources") or {}).get("requests") or {}
    cpu = _quantity(_cpu, req["cpu"]) if req.get("cpu") is not None else 0
    mem = _quantity(_mem, req["memory"]) if req.get("memory") is not None else 0
    return cpu, mem


# --- pods --------------------------------------------------------------------------------------


class PodInfo:
    """The scheduling-relevant facts of one pod, parsed once from its wire object."""

    __slots__ = (
        "key",
        "name",
        "namespace",
        "uid",
        "labels",
        "obj",
        "cpu",
        "memory",
        "nonzero_cpu",
        "nonzero_memory",
        "host_ports",
        "node_selector",
        "required_terms",
        "tolerations",
        "_static_key",
        "owner_key",
        "spread_keys",
    )

    def __init__(self, pod: Obj):
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        self.name: str = str(meta.get("name") or "")
        self.namespace: str = str(meta.get("namespace") or "default")
        self.key: str = f"{self.namespace}/{self.name}"
        self.uid: str = str(meta.get("uid") or "")
        self.refer_to(pod)
        cpu = mem = nz_cpu = nz_mem = 0
        ports: list[tuple[str, str, int]] = []
        for c in spec.get("containers") or ():
            c_cpu, c_mem = _requests(c)
            cpu += c_cpu
            mem += c_mem
            nz_cpu += c_cpu or DEFAULT_MILLI_CPU_REQUEST
            nz_mem += c_mem or DEFAULT_MEMORY_REQUEST
            for p in c.get("ports") or ():
                hp = p.get("hostPort")
                if hp:
                    ports.append(
                        (str(p.get("protocol") or "TCP"), str(p.get("hostIP") or "0.0.0.0"), int(hp))
                    )
        # Init containers run one at a time before the app containers: the pod needs the larger.
        for c in spec.get("initContainers") or ():
            c_cpu, c_mem = _requests(c)
            cpu, mem = max(cpu, c_cpu), max(mem, c_mem)
            nz_cpu, nz_mem = max(nz_cpu, c_cpu), max(nz_mem, c_mem)
        overhead = spec.get("overhead") or {}
        if overhead:
            o_cpu, o_mem = _requests({"resources": {"requests": overhead}})
            cpu, mem, nz_cpu, nz_mem = cpu + o_cpu, mem + o_mem, nz_cpu + o_cpu, nz_mem + o_mem
        self.cpu, self.memory, self.nonzero_cpu, self.nonzero_memory = cpu, mem, nz_cpu, nz_mem
        self.host_ports: tuple[tuple[str, str, int], ...] = tuple(ports)
        self._static_key: str | None = None
        owner = ""
        for ref in meta.get("ownerReferences") or ():
            if ref.get("controller"):
                owner = f"owner:{ref.get('uid') or ref.get('kind', '') + '/' + str(ref.get('name', ''))}"
                break
        self.owner_key = owner
        self.spread_keys: tuple[str, ...] = (owner,) if owner else ()

    def refer_to(self, pod: Obj) -> None:
        """Take `pod`'s parts the plugins read: shared with the (read-only) informer object rather
        than copied, as thousands of bound pods are held. A newer version of the pod with the same
        spec and labels is taken the same way, so that no part of an older version stays held."""
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        self.obj = pod
        self.labels: dict[str, str] = meta.get("labels") or {}
        self.node_selector: dict[str, str] = spec.get("nodeSelector") or {}
        required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        ) or None
        # None = no required affinity; a list (maybe empty, which matches nothing) = the terms.
        self.required_terms: list[dict[str, Any]] | None = (
            list(required.get("nodeSelectorTerms") or []) if required is not None else None
        )
        self.tolerations: list[dict[str, Any]] = spec.get("tolerations") or []

    @property
    def static_key(self) -> str:
        """Everything the static filters read from the pod: pods with equal keys get equal answers
        (computed on first use: only pods being scheduled need it)."""
        if self._static_key is None:
            self._static_key = json.dumps(
                [self.node_selector, self.required_terms, self.tolerations], sort_keys=True, default=str
            )
        return self._static_key

    def __repr__(self) -> str:
        return f"PodInfo({self.key}, cpu={self.cpu}m, memory={self.memory})"


def as_pod_info(pod: Obj | PodInfo) -> PodInfo:
    return pod if isinstance(pod, PodInfo) else PodInfo(pod)


# --- nodes -------------------------------------------------------------------------------------


def _node_ready(node: Obj) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def _allocatable(node: Obj) -> tuple[int, int, int]:
    status = node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    cap = status.get("capacity") or {}

    def pick(name: str) -> Any:
        v = alloc.get(name)
        return cap.get(name) if v is None else v

    cpu, mem, pods = pick("cpu"), pick("memory"), pick("pods")
    return (
        _quantity(_cpu, cpu) if cpu is not None else 0,
        _quantity(_mem, mem) if mem is not None else 0,
        int(parse_quantity(pods)) if pods is not None else 0,
    )


class NodeInfo:
    """One node and what is bound (or assumed bound) to it. Plugins read it, never write it."""

    __slots__ = (
        "name",
        "node",
        "labels",
        "ready",
        "unschedulable",
        "taints",
        "alloc_cpu",
        "alloc_memory",
        "alloc_pods",
        "requested_cpu",
        "requested_memory",
        "nonzero_cpu",
        "nonzero_memory",
        "pods",
        "used_ports",
        "spread_counts",
        "static_key",
    )

    def __init__(self, node: Obj):
        self.name: str = str((node.get("metadata") or {}).get("name") or "")
        self.pods: dict[str, PodInfo] = {}
        self.requested_cpu = self.requested_memory = 0
        self.nonzero_cpu = self.nonzero_memory = 0
        self.used_ports: Counter[tuple[str, str, int]] = Counter()
        self.spread_counts: Counter[str] = Counter()
        self.alloc_cpu = self.alloc_memory = self.alloc_pods = -1  # set_node fills these in
        self.static_key: tuple[Any, ...] | None = None
        self.set_node(node)

    def set_node(self, node: Obj) -> tuple[bool, bool]:
        """Take a new version of the node object; returns (static fields changed, capacity changed)."""
        spec = node.get("spec") or {}
        self.node = node
        labels = dict((node.get("metadata") or {}).get("labels") or {})
        taints = tuple(
            (str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or ""))
            for t in spec.get("taints") or ()
        )
        ready, unschedulable = _node_ready(node), bool(spec.get("unschedulable"))
        static_key = (tuple(sorted(labels.items())), taints, ready, unschedulable)
        alloc = _allocatable(node)
        static_changed = self.static_key != static_key
        capacity_changed = alloc != (
            self.alloc_cpu,
            self.alloc_memory,
            self.alloc_pods,
        )
        self.labels, self.taints, self.ready, self.unschedulable = labels, taints, ready, unschedulable
        self.static_key = static_key
        self.alloc_cpu, self.alloc_memory, self.alloc_pods = alloc
        return static_changed, capacity_changed

    def add_pod(self, pod: PodInfo) -> None:
        old = self.pods.get(pod.key)
        if old is not None:
            self.remove_pod(pod.key)
        self.pods[pod.key] = pod
        self.requested_cpu += pod.cpu
        self.requested_memory += pod.memory
        self.nonzero_cpu += pod.nonzero_cpu
        self.nonzero_memory += pod.nonzero_memory
        for port in pod.host_ports:
            self.used_ports[port] += 1
        for k in pod.spread_keys:
            self.spread_counts[k] += 1

    def remove_pod(self, key: str) -> PodInfo | None:
        pod = self.pods.pop(key, None)
        if pod is None:
            return None
        self.requested_cpu -= pod.cpu
        self.requested_memory -= pod.memory
        self.nonzero_cpu -= pod.nonzero_cpu
        self.nonzero_memory -= pod.nonzero_memory
        for port in pod.host_ports:
            self.used_ports[port] -= 1
            if self.used_ports[port] <= 0:
                del self.used_ports[port]
        for k in pod.spread_keys:
            self.spread_counts[k] -= 1
            if self.spread_counts[k] <= 0:
                del self.spread_counts[k]
        return pod

    @property
    def pod_count(self) -> int:
        return len(self.pods)

    def __repr__(self) -> str:
        return (
            f"NodeInfo({self.name}, pods={len(self.pods)}/{self.alloc_pods}, "
            f"cpu={self.requested_cpu}/{self.alloc_cpu}m, memory={self.requested_memory}/{self.alloc_memory})"
        )


# --- the snapshot ------------------------------------------------------------------------------


_snapshot_serials = itertools.count(1)


class Snapshot:
    """Every node with its bound pods, kept current by informer callbacks; thread-safe via `lock`.

    `generation` moves whenever a node's static fields change (labels, taints, readiness, cordon)
    or a node comes or goes: the framework's cache of static filter results keys on it.
    `changes` moves on anything that may let a parked pod fit now (a node added or changed, a pod
    removed): the scheduler compares it to decide whether to retry unschedulable pods.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.serial = next(_snapshot_serials)  # unlike id(), never reused: caches key on it
        self.nodes: dict[str, NodeInfo] = {}
        self.pod_node: dict[str, str] = {}  # pod key -> node it is accounted on
        self.assumed: set[str] = set()  # bound by us, not yet confirmed by the informer
        self.services: dict[str, dict[str, dict[str, str]]] = {}  # ns -> name -> selector map
        self.generation = 0
        self._order: list[NodeInfo] | None = None
        # bound pods whose node is not known yet (the pod informer ran ahead of the node informer)
        self._orphans: dict[str, tuple[str, PodInfo]] = {}

    @classmethod
    def from_objects(
        cls, nodes: Iterable[Obj], pods: Iterable[Obj] = (), services: Iterable[Obj] = ()
    ) -> Snapshot:
        """A snapshot of plain objects (tests, one-off decisions)."""
        snap = cls()
        for s in services:
            snap.set_service(s)
        for n in nodes:
            snap.set_node(n)
        for p in pods:
            snap.set_pod(p)
        return snap

    # -- nodes -------------------------------------------------------------------------------

    def set_node(self, node: Obj) -> bool:
        """Add or update a node; True if pods that did not fit before might fit now."""
        name = str((node.get("metadata") or {}).get("name") or "")
        with self.lock:
            ni = self.nodes.get(name)
            if ni is None:
                ni = self.nodes[name] = NodeInfo(node)
                self._order = None
                self.generation += 1
                for key, (node_name, pod) in list(self._orphans.items()):
                    if node_name == name:
                        del self._orphans[key]
                        ni.add_pod(pod)
                        self.pod_node[key] = name
                return True
            static_changed, capacity_changed = ni.set_node(node)
            if static_changed:
                self.generation += 1
            return static_changed or capacity_changed

    def remove_node(self, name: str) -> None:
        with self.lock:
            ni = self.nodes.pop(name, None)
            if ni is None:
                return
            self._order = None
            self.generation += 1
            # Its pods stay known (as orphans) until the pod informer says where they went.
            for key, pod in ni.pods.items():
                self._orphans[key] = (name, pod)
                self.pod_node.pop(key, None)

    def node_list(self) -> list[NodeInfo]:
        """Nodes in a stable order (by name), the order the rotating filter start walks."""
        with self.lock:
            if self._order is None:
                self._order = [self.nodes[n] for n in sorted(self.nodes)]
            return self._order

    # -- pods --------------------------------------------------------------------------------

    def _spread_keys(self, pod: PodInfo) -> tuple[str, ...]:
        keys = [pod.owner_key] if pod.owner_key else []
        for name, selector in (self.services.get(pod.namespace) or {}).items():
            if selector and all(pod.labels.get(k) == v for k, v in selector.items()):
                keys.append(f"svc:{pod.namespace}/{name}")
        return tuple(keys)

    def prepare(self, pod: PodInfo) -> PodInfo:
        """Fill in what depends on the cluster (the services that select the pod)."""
        with self.lock:
            pod.spread_keys = self._spread_keys(pod)
        return pod

    def set_pod(self, pod_obj: Obj) -> bool:
        """Account a pod (from the informer). Unbound or finished pods are not accounted; returns
        True when resources were freed (the pod left a node)."""
        spec = pod_obj.get("spec") or {}
        node_name = spec.get("nodeName") or ""
        key = key_of(pod_obj)
        phase = (pod_obj.get("status") or {}).get("phase")
        with self.lock:
            if not node_name or phase in TERMINAL_PHASES:
                return self.remove_pod(key)
            prev = self.pod_node.get(key)
            confirming = key in self.assumed
            self.assumed.discard(key)
            held = self.nodes[prev].pods.get(key) if prev == node_name and prev in self.nodes else None
            meta = pod_obj.get("metadata") or {}
            if (
                held is not None
                and held.uid == str(meta.get("uid") or "")
                and held.labels == (meta.get("labels") or {})
                and (confirming or (held.obj.get("spec") or {}) == spec)
            ):
                # The informer confirms our own bind, or brings a status change (the node's
                # report): what is accounted for the pod is as it was.
                held.refer_to(pod_obj)
                return False
            pod = self.prepare(PodInfo(pod_obj))
            if prev is not None and prev != node_name:
                self.nodes[prev].remove_pod(key)
            ni = self.nodes.get(node_name)
            if ni is None:
                self.pod_node.pop(key, None)
                self._orphans[key] = (node_name, pod)
                return False
            ni.add_pod(pod)
            self.pod_node[key] = node_name
            return False

    def remove_pod(self, key: str) -> bool:
        with self.lock:
            self.assumed.discard(key)
            self._orphans.pop(key, None)
            node_name = self.pod_node.pop(key, None)
            if node_name is None:
                return False
            ni = self.nodes.get(node_name)
            return ni is not None and ni.remove_pod(key) is not None

    def assume(self, pod: PodInfo, node_name: str) -> None:
        """Account a pod we are binding, before the informer reports it bound."""
        with self.lock:
            if self.pod_node.get(pod.key) == node_name:
                return  # the informer was faster
            self.remove_pod(pod.key)
            self.nodes[node_name].add_pod(pod)
            self.pod_node[pod.key] = node_name
            self.assumed.add(pod.key)

    def forget(self, key: str) -> None:
        """Undo `assume` after a failed bind (unless the informer has confirmed the pod meanwhile)."""
        with self.lock:
            if key in self.assumed:
                self.remove_pod(key)

    def is_accounted(self, key: str) -> bool:
        with self.lock:
            return key in self.pod_node or key in self._orphans

    # -- services (for spreading) ------------------------------------------------------------

    def set_service(self, svc: Obj) -> None:
        meta = svc.get("metadata") or {}
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
        selector = dict((svc.get("spec") or {}).get("selector") or {})
        with self.lock:
            if (self.services.get(ns) or {}).get(name) == selector:
                return
            self.services.setdefault(ns, {})[name] = selector
            self._recount_spread(ns)

    def remove_service(self, svc: Obj) -> None:
        meta = svc.get("metadata") or {}
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
        with self.lock:
            if name in (self.services.get(ns) or {}):
                del self.services[ns][name]
                self._recount_spread(ns)

    def _recount_spread(self, namespace: str) -> None:
        # Rare (a Service's selector changed): redo the spread keys of that namespace's pods.
        for ni in self.nodes.values():
            for key, pod in list(ni.pods.items()):
                if pod.namespace == namespace:
                    ni.remove_pod(key)
                    pod.spread_keys = self._spread_keys(pod)
                    ni.add_pod(pod)


# --- plugins -----------------------------------------------------------------------------------


class FilterPlugin(Protocol):
    """A yes/no rule per (pod, node). `filter` returns the reasons it does not fit (empty = fits).

    `static` plugins read only the node object (labels, taints, readiness, cordon) and the pod's
    `static_key` fields (nodeSelector, required node affinity, tolerations): their answers are
    cached per pod signature. `applies(pod)` False skips the plugin for that pod (a PreFilter)."""

    name: str
    static: bool

    def applies(self, pod: PodInfo) -> bool: ...

    def filter(self, pod: PodInfo, node: NodeInfo) -> Sequence[str]: ...


class ScorePlugin(Protocol):
    """A preference: `score` gives one raw number per feasible node (a batch, so the per-node cost
    is one list-comprehension step rather than a call), then `normalize` maps them to
    0..MAX_NODE_SCORE."""

    name: str
    weight: int

    def score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[float]: ...

    def normalize(self, pod: PodInfo, scores: list[float]) -> list[float]: ...


# --- results -----------------------------------------------------------------------------------


def failure_message(total_nodes: int, reasons: Mapping[str, Sequence[str]]) -> str:
    """`0/3 nodes are available: 2 Insufficient cpu, 1 node(s) were unschedulable.`

    Each node counts once per reason it gave; most frequent reason first, then alphabetical, as
    kube-scheduler's FitError prints it."""
    if total_nodes == 0:
        return "0/0 nodes are available: no nodes available to schedule pods."
    histogram: Counter[str] = Counter()
    for node_reasons in reasons.values():
        for r in dict.fromkeys(node_reasons):
            histogram[r] += 1
    parts = [f"{n} {r}" for r, n in sorted(histogram.items(), key=lambda kv: (-kv[1], kv[0]))]
    return f"0/{total_nodes} nodes are available: {', '.join(parts)}."


@dataclass
class Result:
    """The decision for one pod: a node, or None with why each node was refused."""

    node_name: str | None
    reasons: dict[str, list[str]] = field(default_factory=dict)
    total_nodes: int = 0
    feasible: int = 0  # feasible nodes found (the sample that was scored)
    scores: dict[str, float] = field(default_factory=dict)  # only with Framework(record_scores=True)

    @property
    def message(self) -> str:
        if self.node_name is not None:
            return f"assigned to {self.node_name}"
        return failure_message(self.total_nodes, self.reasons)


MIN_FEASIBLE_NODES_TO_FIND = 100

Percentage = int | Literal["adaptive"] | None


def num_feasible_nodes_to_find(total: int, percentage: Percentage = None) -> int:
    """How many feasible nodes to look for before scoring (kube-scheduler's
    numFeasibleNodesToFind): all of them below 100 nodes; else `percentage` of them, never fewer
    than 100. None (nbkube's default) = just 100; "adaptive" = upstream's max(5, 50 - nodes/125)."""
    if total < MIN_FEASIBLE_NODES_TO_FIND or percentage == 100:
        return total
    if percentage is None:
        return MIN_FEASIBLE_NODES_TO_FIND
    if percentage == "adaptive":
        pct = max(5, 50 - total // 125)
    elif isinstance(percentage, int) and 0 < percentage <= 100:
        pct = percentage
    else:
        raise ValueError(
            f"percentage_of_nodes_to_score must be 1-100, None or 'adaptive', not {percentage!r}"
        )
    return max(MIN_FEASIBLE_NODES_TO_FIND, total * pct // 100)


class Framework:
    """Runs the filter and score plugins for one pod at a time (callers serialise via the lock)."""

    def __init__(
        self,
        filters: Sequence[FilterPlugin] | None = None,
        scores: Sequence[ScorePlugin] | None = None,
        *,
        percentage_of_nodes_to_score: Percentage = None,
        record_scores: bool = False,
    ):
        num_feasible_nodes_to_find(1000, percentage_of_nodes_to_score)  # reject bad values early
        if filters is None or scores is None:
            from nbkube.controlplane.scheduler.plugins import default_filters, default_scores

            filters = default_filters() if filters is None else filters
            scores = default_scores() if scores is None else scores
        self.filters = list(filters)
        self.static_filters = [f for f in self.filters if f.static]
        self.dynamic_filters = [f for f in self.filters if not f.static]
        self.scores = list(scores)
        self.percentage = percentage_of_nodes_to_score
        self.record_scores = record_scores  # keep every sampled node's total in Result.scores (tests)
        self._next_start = 0
        # static_key -> (snapshot generation, nodes passing, reasons of the others)
        self._static_cache: dict[str, tuple[int, list[NodeInfo], dict[str, list[str]]]] = {}
        self._cache_owner: int = 0
        self._lock = threading.Lock()

    def _static(self, pod: PodInfo, snapshot: Snapshot) -> tuple[list[NodeInfo], dict[str, list[str]]]:
        if self._cache_owner != snapshot.serial:
            self._static_cache.clear()
            self._cache_owner = snapshot.serial
        hit = self._static_cache.get(pod.static_key)
        if hit is not None and hit[0] == snapshot.generation:
            return hit[1], hit[2]
        active = [f for f in self.static_filters if f.applies(pod)]
        passing: list[NodeInfo] = []
        refused: dict[str, list[str]] = {}
        for ni in snapshot.node_list():
            for plugin in active:
                why = plugin.filter(pod, ni)
                if why:
                    refused[ni.name] = list(why)
                    break
            else:
                passing.append(ni)
        if len(self._static_cache) >= 256:
            self._static_cache.clear()  # bound memory; the common case is a handful of signatures
        self._static_cache[pod.static_key] = (snapshot.generation, passing, refused)
        return passing, refused

    def schedule_one(self, pod: Obj | PodInfo, snapshot: Snapshot) -> Result:
        """Pick a node for `pod` from `snapshot` (no side effects on either)."""
        info = as_pod_info(pod)
        # The framework's own state (rotating start, static cache) is shared by its callers.
        with self._lock, snapshot.lock:
            snapshot.prepare(info)
            total = len(snapshot.nodes)
            if total == 0:
                return Result(None, {}, 0)
            candidates, static_refused = self._static(info, snapshot)
            dynamic = [f for f in self.dynamic_filters if f.applies(info)]
            want = num_feasible_nodes_to_find(total, self.percentage)
            feasible: list[NodeInfo] = []
            refused: dict[str, list[str]] = {}
            n = len(candidates)
            start = self._next_start % n if n else 0
            checked = found = 0
            # The hot loop: plugin methods bound to locals, one call per node in the common case.
            fns = [f.filter for f in dynamic]
            single = fns[0] if len(fns) == 1 else None
            for idx in chain(range(start, n), range(start)):
                ni = candidates[idx]
                checked += 1
                if single is not None:
                    why = single(info, ni)
                else:
                    why = ()
                    for fn in fns:
                        why = fn(info, ni)
                        if why:
                            break
                if why:
                    refused[ni.name] = list(why)
                    continue
                feasible.append(ni)
                found += 1
                if found >= want:
                    break
            self._next_start = start + checked
            if not feasible:
                return Result(None, {**static_refused, **refused}, total)
            if len(feasible) == 1:
                return Result(feasible[0].name, {}, total, 1)
            totals: list[float] | None = None
            for scorer in self.scores:
                w = scorer.weight
                normalized = scorer.normalize(info, scorer.score(info, feasible))
                if totals is None:
                    totals = [w * s for s in normalized] if w != 1 else list(normalized)
                else:
                    totals = [t + w * s for t, s in zip(totals, normalized, strict=True)]
            if totals is None:
                totals = [0.0] * len(feasible)
            best = max(totals)
            ties = [i for i, s in enumerate(totals) if s == best]
            # Deterministic, yet different replicas land on different equally good nodes.
            pick = ties[zlib.crc32(info.key.encode()) % len(ties)] if len(ties) > 1 else ties[0]
            scores = {ni.name: totals[i] for i, ni in enumerate(feasible)} if self.record_scores else {}
            return Result(feasible[pick].name, {}, total, len(feasible), scores)


_default_framework: Framework | None = None
_default_lock = threading.Lock()


def schedule_one(pod: Obj | PodInfo, snapshot: Snapshot) -> Result:
    """Decide with the default plugins (a shared Framework; its rotating start is process-wide)."""
    global _default_framework
    with _default_lock:
        if _default_framework is None:
            _default_framework = Framework()
        fw = _default_framework
    return fw.schedule_one(pod, snapshot)
