"""The Endpoints controller: one Endpoints object per Service with a selector.

Service proxies (userspace or iptables) and `nbkube get endpoints` read these objects to learn
where a Service's traffic goes. Reconcile lists the pods the Service selects, resolves each service
port's `targetPort` (a number, or the name of a container port, which may differ between pods) and
groups pod addresses by the resulting port set, as Kubernetes does: ready pods under `addresses`,
pods that have an IP but are not ready under `notReadyAddresses`. It writes only when the subsets
changed, and deletes the Endpoints object when its Service goes. Services without a selector are
left alone (their Endpoints are written by hand). The control-plane manager starts it.
"""

from __future__ import annotations

import contextlib
import copy
from typing import TYPE_CHECKING, Any

from nbkube.api.meta import Obj, key_of, split_key
from nbkube.api.selectors import selector_from_map
from nbkube.client.controller import Controller
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.controlplane.controllers.replication import is_active, is_ready
from nbkube.errors import AlreadyExists, Conflict, NbkubeError, NotFound

if TYPE_CHECKING:
    from nbkube.client.informer import Informer, InformerFactory
    from nbkube.registry.registry import Registry

__all__ = [
    "EndpointsController",
    "compute_subsets",
    "pod_endpoint_fields",
    "pod_hostname",
    "resolve_target_port",
    "selected_pods",
    "services_selecting",
    "watch_selected_pods",
]


def resolve_target_port(pod: Obj, svc_port: dict[str, Any]) -> int | None:
    """The pod port a service port sends to: an int targetPort as is, a name looked up among the
    pod's container ports (None when the pod has no such port)."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if isinstance(target, str):
        if target.isdigit():
            return int(target)
        protocol = svc_port.get("protocol") or "TCP"
        for c in (pod.get("spec") or {}).get("containers") or []:
            for p in c.get("ports") or []:
                if p.get("name") == target and (p.get("protocol") or "TCP") == protocol:
                    return int(p["containerPort"])
    return None


def pod_hostname(pod: Obj, service_name: str) -> str:
    """The endpoint hostname of a pod behind Service `service_name`: its spec.hostname when its
    spec.subdomain names that Service (what gives `db-2.db.NS.svc.cluster.local`), else ""."""
    spec = pod.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == service_name:
        return str(spec["hostname"])
    return ""


def pod_endpoint_fields(pod: Obj, service_name: str) -> dict[str, Any]:
    """What an Endpoints address and an EndpointSlice endpoint both say of a pod: targetRef, and
    nodeName and hostname when it has them."""
    meta = pod.get("metadata") or {}
    out: dict[str, Any] = {
        "targetRef": {
            "kind": "Pod",
            "name": meta.get("name"),
            "namespace": meta.get("namespace") or "default",
            "uid": meta.get("uid"),
        },
    }
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        out["nodeName"] = node
    hostname = pod_hostname(pod, service_name)
    if hostname:
        out["hostname"] = hostname
    return out


def _address(pod: Obj, service_name: str = "") -> dict[str, Any]:
    return {"ip": (pod.get("status") or {}).get("podIP"), **pod_endpoint_fields(pod, service_name)}


def compute_subsets(svc: Obj, pods: list[Obj]) -> list[dict[str, Any]]:
    """The Endpoints subsets for a Service and the pods its selector matched (pure, deterministic)."""
    spec = svc.get("spec") or {}
    publish_all = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[tuple[tuple[str, int, str], ...], dict[str, list[dict[str, Any]]]] = {}
    for pod in pods:
        if not is_active(pod) or not (pod.get("status") or {}).get("podIP"):
            continue
        ports: list[tuple[str, int, str]] = []
        for sp in spec.get("ports") or []:
            number = resolve_target_port(pod, sp)
            if number is not None:
                ports.append((str(sp.get("name") or ""), number, str(sp.get("protocol") or "TCP")))
        key = tuple(sorted(ports))
        group = groups.setdefault(key, {"addresses": [], "notReadyAddresses": []})
        ready = publish_all or is_ready(pod)
        name = str((svc.get("metadata") or {}).get("name") or "")
        group["addresses" if ready else "notReadyAddresses"].append(_address(pod, name))
    subsets: list[dict[str, Any]] = []
    for key in sorted(groups):
        group = groups[key]
        subset: dict[str, Any] = {}
        for field in ("addresses", "notReadyAddresses"):
            if group[field]:
                subset[field] = sorted(
                    group[field], key=lambda a: (_ip_key(str(a["ip"])), a["targetRef"]["name"])
                )
        ports_out = []
        for name, number, protocol in key:
            port: dict[str, Any] = {"port": number, "protocol": protocol}
            if name:
                port["name"] = name
            ports_out.append(port)
        if ports_out:
            subset["ports"] = ports_out
        subsets.append(subset)
    return subsets


def _ip_key(ip: str) -> tuple[int, ...] | tuple[str]:
    try:
        return tuple(int(x) for x in ip.split("."))
    except ValueError:
        return (ip,)


def services_selecting(services: Informer, pod: Obj) -> list[Obj]:
    """The Services of the pod's namespace whose selector matches its labels."""
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    labels = (pod.get("metadata") or {}).get("labels") or {}
    out = []
    for svc in services.by_index("namespace", ns):
        selector = (svc.get("spec") or {}).get("selector")
        if not selector:
            continue
        try:
            if selector_from_map(selector).matches(labels):
                out.append(svc)
        except NbkubeError:
            continue
    return out


def selected_pods(pods: Informer, selector: dict[str, Any], ns: str) -> list[Obj]:
    """The pods of namespace `ns` a Service's (map) `selector` matches."""
    sel = selector_from_map(selector)
    return [p for p in pods.by_index("namespace", ns) if sel.matches((p.get("metadata") or {}).get("labels") or {})]


def watch_selected_pods(ctrl: Controller, services: Informer, pods: Informer) -> None:
    """Enqueue, on every pod event, the Services whose selector matches the pod (on a label change,
    those that matched its old labels too): what the Endpoints and EndpointSlice controllers
    recompute from."""

    def changed(pod: Obj) -> None:
        for svc in services_selecting(services, pod):
            ctrl.enqueue(svc)

    def updated(old: Obj, new: Obj) -> None:
        changed(new)
        if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
            changed(old)

    pods.add_handler(on_add=changed, on_update=updated, on_delete=changed)


class EndpointsController(Controller):
    name = "endpoints"

    def __init__(
        self, api: Registry, factory: InformerFactory, *, clock: Clock = REAL_CLOCK, workers: int = 1
    ):
        super().__init__(api, factory, clock=clock, workers=workers)
        self.services: Informer = factory.informer("Service")
        self.pods: Informer = factory.informer("Pod")
        self.endpoints: Informer = factory.informer("Endpoints")
        self.services.add_handler(
            on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new), on_delete=self.enqueue
        )
        watch_selected_pods(self, self.services, self.pods)
        # a hand-edited or deleted Endpoints object is put back
        self.endpoints.add_handler(on_update=lambda old, new: self.enqueue(new), on_delete=self.enqueue)

    def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.services.get(key)
        current = self.endpoints.get(key)
        if svc is None:
            # delete even when the cache has not seen the Endpoints yet (it may lag the store)
            with contextlib.suppress(NotFound):
                self.api.delete("Endpoints", name, ns)
            return
        selector = (svc.get("spec") or {}).get("selector")
        if not selector:
            return
        subsets = compute_subsets(svc, selected_pods(self.pods, selector, ns or "default"))
        labels = dict((svc.get("metadata") or {}).get("labels") or {})
        if current is None:
            ep: Obj = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": name, "namespace": ns or "default"},
                "subsets": subsets,
            }
            if labels:
                ep["metadata"]["labels"] = labels
            try:
                self.api.create(ep)
            except AlreadyExists:
                self.queue.add_rate_limited(key)  # the cache is behind: look again
            return
        if (current.get("subsets") or []) == subsets and (
            (current.get("metadata") or {}).get("labels") or {}
        ) == labels:
            return
        new = copy.deepcopy(current)
        new["subsets"] = subsets
        if labels:
            new["metadata"]["labels"] = labels
        else:
            new["metadata"].pop("labels", None)
        try:
            self.api.update(new)
        except (Conflict, NotFound):
            self.queue.add_rate_limited(key_of(svc))
