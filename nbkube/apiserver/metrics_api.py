"""`metrics.k8s.io/v1beta1`: PodMetrics and NodeMetrics from the registry's MetricsStore.

Why: `kubectl top pods|nodes` and HPA controllers ask this group (upstream: metrics-server behind
the aggregation layer). nbkube serves it from the in-memory `MetricsStore`
(`nbkube/registry/metrics.py`) that node agents report into, with get, list and label selectors
(`-l`), in one namespace or across all. The routes are in `routing.METRICS_KINDS`, so discovery
(legacy and aggregated) lists the group like any other.

A PUT of `nodes/NAME` with a NodeMetrics (and its pods' PodMetrics under `pods`) is how a remote node
agent reports (`nbkube/client/metrics.py`); a node's credential may report only for its own node.
"""

from __future__ import annotations

from typing import Any

from nbkube.api.meta import Obj
from nbkube.api.quantity import parse_cpu, parse_memory
from nbkube.api.selectors import parse_selector
from nbkube.apiserver.noderestriction import node_name_of
from nbkube.apiserver.resources import MethodNotAllowed, Request, Response
from nbkube.apiserver.tables import partial_metadata
from nbkube.errors import BadRequest, Forbidden, NotFound
from nbkube.registry.metrics import (
    METRICS_API_VERSION,
    MetricsStore,
    node_metrics_obj,
    pod_metrics_obj,
    usage_from_objs,
)
from nbkube.registry.registry import Registry

__all__ = ["handle", "is_metrics"]


def is_metrics(req: Request) -> bool:
    return req.route.info.api_version == METRICS_API_VERSION


def _answer(req: Request, kind: str, items: list[Obj]) -> Response:
    if req.table:
        return Response(200, _table(kind, items, req.query.get("includeObject") or "Metadata"))
    return Response(200, _list(kind, items))


def _list(kind: str, items: list[Any]) -> dict[str, Any]:
    return {"kind": f"{kind}List", "apiVersion": METRICS_API_VERSION, "metadata": {}, "items": items}


def handle(registry: Registry, req: Request, user: Any = None) -> Response:
    """Answer one metrics.k8s.io request."""
    store: MetricsStore = registry.metrics
    r = req.route
    if req.method == "PUT" and r.info.kind == "NodeMetrics" and r.name:
        return _report(store, req, user)
    if req.method != "GET":
        raise MethodNotAllowed(f"{req.method} is not allowed on {r.info.plural}.metrics.k8s.io")
    if req.query.get("watch") in ("true", "1"):
        raise MethodNotAllowed(f"watch is not served on {r.info.plural}.metrics.k8s.io (get and list only, as metrics-server)")
    if r.subresource:
        raise NotFound(f"the server could not find the requested resource ({r.info.plural}/{r.subresource})")
    selector = parse_selector(req.query.get("labelSelector") or None)
    if r.info.kind == "NodeMetrics":
        if r.name:
            node = store.node(r.name)
            if node is None:
                raise NotFound(f'nodemetrics.metrics.k8s.io "{r.name}" not found')
            return _answer(req, "NodeMetrics", [node_metrics_obj(node)]) if req.table else Response(200, node_metrics_obj(node))
        return _answer(req, "NodeMetrics", [node_metrics_obj(n) for n in store.nodes() if selector.matches(n.labels)])
    if r.name:
        pod = store.pod(r.namespace, r.name)
        if pod is None:
            raise NotFound(f'podmetrics.metrics.k8s.io "{r.name}" not found')
        return _answer(req, "PodMetrics", [pod_metrics_obj(pod)]) if req.table else Response(200, pod_metrics_obj(pod))
    return _answer(req, "PodMetrics", [pod_metrics_obj(p) for p in store.pods(r.namespace) if selector.matches(p.labels)])


def _table(kind: str, items: list[Obj], include_object: str) -> Obj:
    """What `kubectl get podmetrics|nodemetrics` prints, as metrics-server's tables: NAME CPU MEMORY WINDOW."""
    rows = []
    for item in items:
        if kind == "NodeMetrics":
            usage = item["usage"]
            cpu, mem = parse_cpu(usage["cpu"]), parse_memory(usage["memory"])
        else:
            cpu = sum(parse_cpu(c["usage"]["cpu"]) for c in item["containers"])
            mem = sum(parse_memory(c["usage"]["memory"]) for c in item["containers"])
        row: Obj = {"cells": [item["metadata"]["name"], f"{cpu}m", f"{mem // (1024 * 1024)}Mi", item["window"]]}
        if include_object == "Object":
            row["object"] = item
        elif include_object != "None":
            row["object"] = partial_metadata(item)
        rows.append(row)
    columns = [
        {"name": name, "type": "string", "format": "name" if name == "NAME" else "", "description": "", "priority": 0}
        for name in ("NAME", "CPU", "MEMORY", "WINDOW")
    ]
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": columns, "rows": rows}


def _report(store: MetricsStore, req: Request, user: Any) -> Response:
    body = req.body
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a NodeMetrics object with its pods under `pods`")
    pods = body.get("pods") or []
    if not isinstance(pods, list):
        raise BadRequest("pods: must be a list of PodMetrics")
    node, samples = usage_from_objs(body, pods)
    if node.name != req.route.name:
        raise BadRequest(f"metadata.name {node.name!r} does not match the path's node {req.route.name!r}")
    caller = node_name_of(user) if user is not None else ""
    if caller and caller != node.name:
        raise Forbidden(f'node "{caller}" may report metrics only for itself, not for node "{node.name}"')
    store.report(node, samples)
    return Response(200, node_metrics_obj(node))
