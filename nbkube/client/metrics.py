"""Resource metrics through either transport: node agents report samples, readers get PodMetrics/NodeMetrics.

Why here: node agents, the HPA controller, the CLI and the notebook reach a cluster either through
the in-process `Registry` (which carries the `MetricsStore`, `nbkube/registry/metrics.py`) or through
`RestClient` (the API server's `metrics.k8s.io/v1beta1`, `nbkube/apiserver/metrics_api.py`). These
functions hide which, as the client layer does for every other verb, so a remote node agent
(`nbkube node join`) reports the same way an embedded one does.

A remote report is nbkube's own extension of the metrics API (upstream's metrics-server scrapes the
kubelets instead): a PUT of the node's NodeMetrics with its PodMetrics under `pods`, authorized as
`update` on `nodes.metrics.k8s.io` (the node role has it).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from nbkube.api.meta import Obj
from nbkube.api.selectors import parse_selector
from nbkube.client.rest import RestClient
from nbkube.errors import BadRequest
from nbkube.registry.metrics import (
    MetricsStore,
    NodeUsage,
    PodUsage,
    node_metrics_obj,
    pod_metrics_obj,
)

__all__ = ["METRICS_PREFIX", "node_metrics", "pod_metrics", "report"]

METRICS_PREFIX = "/apis/metrics.k8s.io/v1beta1"


def _store(api: Any) -> MetricsStore | None:
    store = getattr(api, "metrics", None)
    return store if isinstance(store, MetricsStore) else None


def _unsupported(api: Any) -> BadRequest:
    return BadRequest(f"resource metrics: {type(api).__name__} is neither a Registry nor a RestClient")


def report(api: Any, node: NodeUsage, pods: list[PodUsage]) -> None:
    """Replace what `node` reported before with this sample."""
    store = _store(api)
    if store is not None:
        store.report(node, pods)
        return
    if isinstance(api, RestClient):
        body = {**node_metrics_obj(node), "pods": [pod_metrics_obj(p) for p in pods]}
        api.request("PUT", f"{METRICS_PREFIX}/nodes/{quote(node.name, safe='')}", body)
        return
    raise _unsupported(api)


def _query(label_selector: str | None) -> dict[str, str]:
    return {"labelSelector": label_selector} if label_selector else {}


def pod_metrics(api: Any, namespace: str = "", label_selector: str | None = None) -> list[Obj]:
    """PodMetrics of one namespace ("" all), filtered by a label selector's text."""
    store = _store(api)
    if store is not None:
        selector = parse_selector(label_selector)
        return [pod_metrics_obj(p) for p in store.pods(namespace) if selector.matches(p.labels)]
    if isinstance(api, RestClient):
        path = f"{METRICS_PREFIX}/namespaces/{quote(namespace, safe='')}/pods" if namespace else f"{METRICS_PREFIX}/pods"
        return list((api.request("GET", path, query=_query(label_selector))[1] or {}).get("items") or [])
    raise _unsupported(api)


def node_metrics(api: Any, label_selector: str | None = None) -> list[Obj]:
    """NodeMetrics of every node that reported recently, filtered by a label selector's text."""
    store = _store(api)
    if store is not None:
        selector = parse_selector(label_selector)
        return [node_metrics_obj(n) for n in store.nodes() if selector.matches(n.labels)]
    if isinstance(api, RestClient):
        return list((api.request("GET", f"{METRICS_PREFIX}/nodes", query=_query(label_selector))[1] or {}).get("items") or [])
    raise _unsupported(api)
