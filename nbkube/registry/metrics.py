"""The resource-metrics store: the latest CPU and memory figures of every pod and node, in memory.

Why not the store (etcd/SQLite): as upstream's metrics-server, these figures are a cache of the last
sample, rewritten every few seconds by every node; writing them through the revisioned store would
cost a revision per pod per period and fill watch histories with noise. So the Registry carries a
`MetricsStore` beside its store; node agents report into it (in process directly, remote agents
through the API: `nbkube/client/metrics.py`), and the `metrics.k8s.io/v1beta1` API
(`nbkube/apiserver/metrics_api.py`), `kubectl top` and the HPA controller read it.

A node's report replaces everything that node said before (pods gone from it are gone from the
store). Figures older than `max_age` are dropped when read: a node that stops reporting (powered
off) stops showing, as metrics-server forgets a kubelet it cannot scrape.

`pod_metrics_obj` / `node_metrics_obj` give the wire shape (PodMetrics, NodeMetrics), usage in
Kubernetes quantities: CPU in nanocores (`12345678n`), memory in Ki.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from nbkube.api.meta import Obj
from nbkube.api.quantity import QuantityError, parse_decimal, parse_memory
from nbkube.clock import REAL_CLOCK, Clock, parse_rfc3339, rfc3339
from nbkube.errors import BadRequest

__all__ = [
    "ContainerUsage",
    "MetricsStore",
    "NodeUsage",
    "PodUsage",
    "cpu_quantity",
    "memory_quantity",
    "node_metrics_obj",
    "pod_metrics_obj",
    "usage_from_objs",
]

METRICS_API_VERSION = "metrics.k8s.io/v1beta1"


@dataclass(frozen=True)
class ContainerUsage:
    name: str
    cpu_nanocores: int
    memory_bytes: int


@dataclass(frozen=True)
class PodUsage:
    namespace: str
    name: str
    timestamp: float  # end of the sampling window
    window: float  # seconds the CPU rate was measured over
    containers: tuple[ContainerUsage, ...]
    labels: dict[str, str] = field(default_factory=dict)
    node: str = ""

    @property
    def cpu_nanocores(self) -> int:
        return sum(c.cpu_nanocores for c in self.containers)

    @property
    def memory_bytes(self) -> int:
        return sum(c.memory_bytes for c in self.containers)


@dataclass(frozen=True)
class NodeUsage:
    name: str
    timestamp: float
    window: float
    cpu_nanocores: int
    memory_bytes: int
    labels: dict[str, str] = field(default_factory=dict)


class MetricsStore:
    """Thread-safe latest samples, keyed by node; read by namespace/name."""

    def __init__(self, *, clock: Clock = REAL_CLOCK, max_age: float = 120.0):
        self.clock = clock
        self.max_age = max_age
        self._lock = threading.Lock()
        self._nodes: dict[str, NodeUsage] = {}
        self._pods_by_node: dict[str, dict[tuple[str, str], PodUsage]] = {}

    def report(self, node: NodeUsage, pods: list[PodUsage]) -> None:
        """Replace what `node.name` reported before with this sample."""
        with self._lock:
            self._nodes[node.name] = node
            self._pods_by_node[node.name] = {(p.namespace, p.name): p for p in pods}

    def forget_node(self, name: str) -> None:
        with self._lock:
            self._nodes.pop(name, None)
            self._pods_by_node.pop(name, None)

    def _fresh(self, timestamp: float) -> bool:
        return timestamp >= self.clock.now() - self.max_age

    def nodes(self) -> list[NodeUsage]:
        with self._lock:
            return sorted((n for n in self._nodes.values() if self._fresh(n.timestamp)), key=lambda n: n.name)

    def node(self, name: str) -> NodeUsage | None:
        with self._lock:
            n = self._nodes.get(name)
        return n if n is not None and self._fresh(n.timestamp) else None

    def pods(self, namespace: str = "") -> list[PodUsage]:
        """Every fresh pod sample, in one namespace or ("") all; newest wins if two nodes name one pod."""
        found: dict[tuple[str, str], PodUsage] = {}
        with self._lock:
            for pods in self._pods_by_node.values():
                for key, p in pods.items():
                    if namespace and p.namespace != namespace:
                        continue
                    if not self._fresh(p.timestamp):
                        continue
                    if key not in found or found[key].timestamp < p.timestamp:
                        found[key] = p
        return [found[k] for k in sorted(found)]

    def pod(self, namespace: str, name: str) -> PodUsage | None:
        return next((p for p in self.pods(namespace) if p.name == name), None)


def cpu_quantity(nanocores: int) -> str:
    return f"{max(0, int(nanocores))}n"


def memory_quantity(memory_bytes: int) -> str:
    return f"{max(0, int(memory_bytes)) // 1024}Ki"


def pod_metrics_obj(p: PodUsage) -> Obj:
    return {
        "kind": "PodMetrics",
        "apiVersion": METRICS_API_VERSION,
        "metadata": {
            "name": p.name,
            "namespace": p.namespace,
            "labels": dict(p.labels),
            "creationTimestamp": rfc3339(p.timestamp),
        },
        "timestamp": rfc3339(p.timestamp),
        "window": f"{max(1, round(p.window))}s",
        "containers": [
            {"name": c.name, "usage": {"cpu": cpu_quantity(c.cpu_nanocores), "memory": memory_quantity(c.memory_bytes)}}
            for c in p.containers
        ],
    }


def node_metrics_obj(n: NodeUsage) -> Obj:
    return {
        "kind": "NodeMetrics",
        "apiVersion": METRICS_API_VERSION,
        "metadata": {"name": n.name, "labels": dict(n.labels), "creationTimestamp": rfc3339(n.timestamp)},
        "timestamp": rfc3339(n.timestamp),
        "window": f"{max(1, round(n.window))}s",
        "usage": {"cpu": cpu_quantity(n.cpu_nanocores), "memory": memory_quantity(n.memory_bytes)},
    }


def _nanocores(q: object) -> int:
    return int(parse_decimal(q) * 1_000_000_000)


def _seconds(text: object) -> float:
    raw = str(text or "0s")
    return float(raw[:-1]) if raw.endswith("s") else float(raw)


def usage_from_objs(node_obj: Obj, pod_objs: list[Obj]) -> tuple[NodeUsage, list[PodUsage]]:
    """A remote node's report (its NodeMetrics and its PodMetrics) back into samples.

    Raises BadRequest naming the field that is not a metrics object."""
    try:
        meta = node_obj["metadata"]
        node = NodeUsage(
            name=str(meta["name"]),
            timestamp=parse_rfc3339(str(node_obj["timestamp"])),
            window=_seconds(node_obj.get("window")),
            cpu_nanocores=_nanocores(node_obj["usage"]["cpu"]),
            memory_bytes=parse_memory(node_obj["usage"]["memory"]),
            labels=dict(meta.get("labels") or {}),
        )
    except (KeyError, TypeError, ValueError, QuantityError) as exc:
        raise BadRequest(f"NodeMetrics: missing or malformed field {exc}") from None
    pods = []
    for i, p in enumerate(pod_objs):
        try:
            pmeta = p["metadata"]
            pods.append(
                PodUsage(
                    namespace=str(pmeta["namespace"]),
                    name=str(pmeta["name"]),
                    timestamp=parse_rfc3339(str(p["timestamp"])),
                    window=_seconds(p.get("window")),
                    containers=tuple(
                        ContainerUsage(
                            str(c["name"]), _nanocores(c["usage"]["cpu"]), parse_memory(c["usage"]["memory"])
                        )
                        for c in p.get("containers") or []
                    ),
                    labels=dict(pmeta.get("labels") or {}),
                    node=node.name,
                )
            )
        except (KeyError, TypeError, ValueError, QuantityError) as exc:
            raise BadRequest(f"pods[{i}]: missing or malformed field {exc}") from None
    return node, pods
