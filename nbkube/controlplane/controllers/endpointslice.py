"""The EndpointSlice controllers: `discovery.k8s.io/v1` slices beside every Service's Endpoints.

Readers: the node proxies (nbkube/node/proxy/) and the cluster DNS (nbkube/controlplane/dns/). Two
controllers, as upstream has:
- `EndpointSliceController`, for Services with a selector: the pods the selector matches, grouped
  by the port set their targetPorts resolve to (one slice per group, as Endpoints has one subset per
  group), each endpoint with conditions `ready` (the pod is Ready, or the Service publishes
  not-ready addresses), `serving` (Ready, whether terminating or not) and `terminating`
  (deletionTimestamp set): terminating pods stay in the slice, not ready, for proxies that want
  to drain them;
- `EndpointSliceMirroringController`, for Services without a selector: their hand-written
  Endpoints (kube-system/kube-dns among them) mirrored into slices, so a proxy that reads only
  slices still reaches them.
Slices carry `kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by`, and an
ownerReference to their Service; names are `<service>-<hash of the port set>`, stable across syncs.
A slice is written only when its content changed; slices of the Service that no group needs any
more are deleted.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
from typing import TYPE_CHECKING, Any

from nbkube.api.discovery import LABEL_MANAGED_BY, LABEL_SERVICE_NAME, MAX_ENDPOINTS
from nbkube.api.meta import Obj, key_of, split_key
from nbkube.client.controller import Controller
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.controlplane.controllers.endpoints import (
    _ip_key,
    pod_endpoint_fields,
    resolve_target_port,
    selected_pods,
    watch_selected_pods,
)
from nbkube.controlplane.controllers.replication import is_ready
from nbkube.errors import AlreadyExists, Conflict, NotFound

if TYPE_CHECKING:
    from nbkube.client.informer import Informer, InformerFactory
    from nbkube.registry.registry import Registry

__all__ = [
    "EndpointSliceController",
    "EndpointSliceMirroringController",
    "MANAGED_BY",
    "MIRROR_MANAGED_BY",
    "compute_slices",
    "mirror_slices",
]

MANAGED_BY = "endpointslice-controller.k8s.io"
MIRROR_MANAGED_BY = "endpointslicemirroring-controller.k8s.io"

Ports = tuple[tuple[str, int, str], ...]  # (name, port, protocol), sorted


def _slice_name(service: str, ports: Ports, part: int) -> str:
    digest = hashlib.sha256(repr((ports, part)).encode()).hexdigest()[:5]
    return f"{service[:240]}-{digest}"


def _endpoint(pod: Obj, service: str, ready: bool, serving: bool, terminating: bool) -> dict[str, Any]:
    return {
        "addresses": [str((pod.get("status") or {}).get("podIP"))],
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        **pod_endpoint_fields(pod, service),
    }


def _ports_out(ports: Ports) -> list[dict[str, Any]]:
    return [{"name": name, "port": number, "protocol": protocol} for name, number, protocol in ports]


def _slices(svc: Obj, groups: dict[Ports, list[dict[str, Any]]], managed_by: str) -> list[Obj]:
    meta = svc.get("metadata") or {}
    name, ns = str(meta.get("name") or ""), str(meta.get("namespace") or "default")
    labels = {**(meta.get("labels") or {}), LABEL_SERVICE_NAME: name, LABEL_MANAGED_BY: managed_by}
    owner = {
        "apiVersion": "v1",
        "kind": "Service",
        "name": name,
        "uid": meta.get("uid"),
        "controller": True,
        "blockOwnerDeletion": True,
    }
    out: list[Obj] = []
    for ports in sorted(groups):
        eps = sorted(groups[ports], key=lambda e: (_ip_key(e["addresses"][0]), str(e["targetRef"].get("name"))))
        for part, start in enumerate(range(0, max(len(eps), 1), MAX_ENDPOINTS)):
            out.append(
                {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "name": _slice_name(name, ports, part),
                        "namespace": ns,
                        "labels": dict(labels),
                        "ownerReferences": [dict(owner)] if meta.get("uid") else [],
                    },
                    "addressType": "IPv4",
                    "endpoints": eps[start : start + MAX_ENDPOINTS],
                    "ports": _ports_out(ports),
                }
            )
    return out


def compute_slices(svc: Obj, pods: list[Obj]) -> list[Obj]:
    """The slices of a Service with a selector, given the pods it matched (pure, deterministic).

    A Service with no matching pod still gets one empty slice with its ports, as upstream keeps one,
    so readers can tell "no endpoints" from "not synced yet"."""
    spec = svc.get("spec") or {}
    name = str((svc.get("metadata") or {}).get("name") or "")
    publish_all = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[Ports, list[dict[str, Any]]] = {}
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed") or not status.get("podIP"):
            continue
        ports = tuple(
            sorted(
                (str(sp.get("name") or ""), number, str(sp.get("protocol") or "TCP"))
                for sp in spec.get("ports") or []
                if (number := resolve_target_port(pod, sp)) is not None
            )
        )
        terminating = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
        serving = publish_all or is_ready(pod)
        groups.setdefault(ports, []).append(
            _endpoint(pod, name, ready=serving and not terminating, serving=serving, terminating=terminating)
        )
    if not groups:
        svc_ports: Ports = tuple(
            sorted(
                (str(sp.get("name") or ""), int(sp["targetPort"]), str(sp.get("protocol") or "TCP"))
                for sp in spec.get("ports") or []
                if isinstance(sp.get("targetPort"), int)
            )
        )
        groups[svc_ports] = []
    return _slices(svc, groups, MANAGED_BY)


def mirror_slices(svc: Obj, endpoints: Obj | None) -> list[Obj]:
    """The slices mirroring a selector-less Service's Endpoints (none without Endpoints)."""
    if endpoints is None:
        return []
    groups: dict[Ports, list[dict[str, Any]]] = {}
    for subset in endpoints.get("subsets") or []:
        ports = tuple(
            sorted(
                (str(p.get("name") or ""), int(p["port"]), str(p.get("protocol") or "TCP"))
                for p in subset.get("ports") or []
            )
        )
        group = groups.setdefault(ports, [])
        for field, ready in (("addresses", True), ("notReadyAddresses", False)):
            for addr in subset.get(field) or []:
                ep: dict[str, Any] = {
                    "addresses": [str(addr.get("ip"))],
                    "conditions": {"ready": ready, "serving": ready, "terminating": False},
                    "targetRef": dict(addr.get("targetRef") or {}),
                }
                for key in ("hostname", "nodeName"):
                    if addr.get(key):
                        ep[key] = addr[key]
                group.append(ep)
    return _slices(svc, groups, MIRROR_MANAGED_BY) if groups else []


class _SliceWriter(Controller):
    """Shared reconcile: make the Service's slices managed by `managed_by` equal the desired ones."""

    managed_by = ""

    def __init__(
        self, api: Registry, factory: InformerFactory, *, clock: Clock = REAL_CLOCK, workers: int = 1
    ):
        super().__init__(api, factory, clock=clock, workers=workers)
        self.services: Informer = factory.informer("Service")
        self.slices: Informer = factory.informer("EndpointSlice")
        self.services.add_handler(
            on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new), on_delete=self.enqueue
        )
        # a hand-edited or deleted slice of ours is put back
        self.slices.add_handler(on_update=lambda old, new: self._slice_changed(new), on_delete=self._slice_changed)

    def _slice_changed(self, sl: Obj) -> None:
        labels = (sl.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_MANAGED_BY) == self.managed_by and labels.get(LABEL_SERVICE_NAME):
            ns = (sl.get("metadata") or {}).get("namespace") or "default"
            self.queue.add(f"{ns}/{labels[LABEL_SERVICE_NAME]}")

    def desired(self, svc: Obj, ns: str) -> list[Obj] | None:
        """The slices this controller wants for `svc`; None: not this controller's Service."""
        raise NotImplementedError

    def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        ns = ns or "default"
        svc = self.services.get(key)
        want = self.desired(svc, ns) if svc is not None else []
        if want is None:
            want = []
        have = {
            (s.get("metadata") or {}).get("name"): s
            for s in self.slices.by_index("namespace", ns)
            if ((s.get("metadata") or {}).get("labels") or {}).get(LABEL_SERVICE_NAME) == name
            and ((s.get("metadata") or {}).get("labels") or {}).get(LABEL_MANAGED_BY) == self.managed_by
        }
        try:
            for sl in want:
                sname = sl["metadata"]["name"]
                current = have.pop(sname, None)
                if current is None:
                    try:
                        self.api.create(sl)
                    except AlreadyExists:
                        self.queue.add_rate_limited(key)  # the cache is behind: look again
                    continue
                if all(current.get(f) == sl.get(f) for f in ("addressType", "endpoints", "ports")) and (
                    (current.get("metadata") or {}).get("labels") == sl["metadata"]["labels"]
                ):
                    continue
                new = copy.deepcopy(current)
                for f in ("addressType", "endpoints", "ports"):
                    new[f] = sl[f]
                new["metadata"]["labels"] = sl["metadata"]["labels"]
                if sl["metadata"].get("ownerReferences"):
                    new["metadata"]["ownerReferences"] = sl["metadata"]["ownerReferences"]
                self.api.update(new)
            for sname in have:
                with contextlib.suppress(NotFound):
                    self.api.delete("EndpointSlice", str(sname), ns)
        except (Conflict, NotFound):
            self.queue.add_rate_limited(key)


class EndpointSliceController(_SliceWriter):
    name = "endpointslice"
    managed_by = MANAGED_BY

    def __init__(
        self, api: Registry, factory: InformerFactory, *, clock: Clock = REAL_CLOCK, workers: int = 1
    ):
        super().__init__(api, factory, clock=clock, workers=workers)
        self.pods: Informer = factory.informer("Pod")
        watch_selected_pods(self, self.services, self.pods)

    def desired(self, svc: Obj, ns: str) -> list[Obj] | None:
        selector = (svc.get("spec") or {}).get("selector")
        if not selector or (svc.get("spec") or {}).get("type") == "ExternalName":
            return None
        return compute_slices(svc, selected_pods(self.pods, selector, ns))


class EndpointSliceMirroringController(_SliceWriter):
    name = "endpointslicemirroring"
    managed_by = MIRROR_MANAGED_BY

    def __init__(
        self, api: Registry, factory: InformerFactory, *, clock: Clock = REAL_CLOCK, workers: int = 1
    ):
        super().__init__(api, factory, clock=clock, workers=workers)
        self.endpoints: Informer = factory.informer("Endpoints")
        self.endpoints.add_handler(
            on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new), on_delete=self.enqueue
        )

    def desired(self, svc: Obj, ns: str) -> list[Obj] | None:
        if (svc.get("spec") or {}).get("selector"):
            return None
        return mirror_slices(svc, self.endpoints.get(key_of(svc)))
