"""The cluster DNS as one component: informers feed the zone, the server answers, kube-dns points at it.

Who starts it: `LocalCluster` with Docker nodes, on an address of the host bridge the nodes hang off
(pods reach the host through their node). `start()` binds the server (a free port), fills the zone
from Service and EndpointSlice informers (one Service recomputed per change) and writes the
selector-less Service `kube-system/kube-dns` with the conventional ClusterIP 10.96.0.10 (the
Service IP allocator keeps that address for it) and its Endpoints at the server's address and port,
so every node's proxy routes 10.96.0.10:53 (UDP and TCP) there. `stop()` stops the server; the
Service stays, as a cluster's other Services do.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from typing import TYPE_CHECKING, Any

from nbkube.api.meta import Obj, key_of
from nbkube.client.informer import InformerFactory
from nbkube.controlplane.dns.server import DNSServer, upstreams_from_resolv_conf
from nbkube.controlplane.dns.zone import Zone
from nbkube.errors import AlreadyExists, Conflict, NotFound

if TYPE_CHECKING:
    from nbkube.registry.registry import Registry

__all__ = ["ClusterDNS", "DNS_SERVICE", "DNS_NAMESPACE", "DNS_SERVICE_IP"]

log = logging.getLogger(__name__)

DNS_SERVICE = "kube-dns"
DNS_NAMESPACE = "kube-system"
DNS_SERVICE_IP = "10.96.0.10"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class ClusterDNS:
    def __init__(
        self,
        api: Registry,
        host: str,
        *,
        domain: str = "cluster.local",
        upstreams: list[tuple[str, int]] | None = None,
        port: int = 0,
    ):
        self.api = api
        self.zone = Zone(domain)
        ups = upstreams if upstreams is not None else upstreams_from_resolv_conf()
        previous = self._previous_port(host) if port == 0 else 0
        try:
            # the port of the last run when it is still free: the Endpoints (and any conntrack
            # entries for 10.96.0.10) stay as they were; another free one if it was taken
            self.server = DNSServer(self.zone, host, previous or port, upstreams=ups)
        except OSError:
            if not previous:
                raise
            log.info("cluster DNS: port %s of the last run is taken; taking another", previous)
            self.server = DNSServer(self.zone, host, 0, upstreams=ups)
        self.factory = InformerFactory(api)
        self.services = self.factory.informer("Service")
        self.slices = self.factory.informer("EndpointSlice")
        self.services.add_handler(on_add=self._changed, on_update=self._changed, on_delete=self._changed)
        self.slices.add_handler(on_add=self._changed, on_update=self._changed, on_delete=self._changed)

    def _previous_port(self, host: str) -> int:
        """The port kube-dns's Endpoints name at `host` (0: none, or at another address)."""
        try:
            ep = self.api.get("Endpoints", DNS_SERVICE, DNS_NAMESPACE)
        except NotFound:
            return 0
        for subset in ep.get("subsets") or []:
            if any(a.get("ip") == host for a in subset.get("addresses") or []):
                for p in subset.get("ports") or []:
                    if p.get("protocol") == "UDP" and isinstance(p.get("port"), int):
                        return int(p["port"])
        return 0

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address

    def _changed(self, *objs: Obj) -> None:
        obj = objs[-1]
        if obj.get("kind") == "EndpointSlice":
            meta = obj.get("metadata") or {}
            name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
            if not name:
                return
            key = f"{meta.get('namespace') or 'default'}/{name}"
        else:
            key = key_of(obj)
        self.refresh(key)

    def refresh(self, key: str) -> None:
        """Recompute one Service's names from the caches."""
        ns, _, name = key.partition("/")
        slices = [
            s
            for s in self.slices.by_index("label", f"{SERVICE_NAME_LABEL}={name}")
            if ((s.get("metadata") or {}).get("namespace") or "default") == ns
        ]
        self.zone.update_service(key, self.services.get(key), slices)

    def start(self) -> None:
        if not self.server.upstreams:  # never a made-up resolver: names outside the cluster fail
            log.warning(
                "cluster DNS: no nameserver in the host's /etc/resolv.conf; names outside %s get SERVFAIL",
                self.zone.domain,
            )
        self.server.start()
        self.factory.start_all()
        self.factory.wait_all_synced(30)
        self._publish()
        log.info("cluster DNS on %s:%s (udp, tcp), Service %s/%s %s", *self.address, DNS_NAMESPACE,
                 DNS_SERVICE, DNS_SERVICE_IP)  # fmt: skip

    def stop(self) -> None:
        self.factory.stop_all()
        self.server.stop()

    def _publish(self) -> None:
        """kube-system/kube-dns (selector-less, 10.96.0.10) and its Endpoints at the server."""
        ports = [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
        ]
        labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
        svc: Obj = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": DNS_SERVICE, "namespace": DNS_NAMESPACE, "labels": labels},
            "spec": {"clusterIP": DNS_SERVICE_IP, "ports": ports},
        }
        try:
            # looked up first: on a restart the create would be refused for the address it holds
            existing = self.api.get("Service", DNS_SERVICE, DNS_NAMESPACE)
            if (existing.get("spec") or {}).get("clusterIP") != DNS_SERVICE_IP:
                log.warning(
                    "cluster DNS: Service %s/%s exists with ClusterIP %s, not %s, which pods' resolv.conf "
                    "names: delete it to let the cluster DNS make its own",
                    DNS_NAMESPACE, DNS_SERVICE, (existing.get("spec") or {}).get("clusterIP"), DNS_SERVICE_IP,
                )  # fmt: skip
        except NotFound:
            with contextlib.suppress(AlreadyExists):
                self.api.create(svc)
        host, port = self.address
        subsets = [
            {
                "addresses": [{"ip": host}],
                "ports": [
                    {"name": "dns", "port": port, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": port, "protocol": "TCP"},
                ],
            }
        ]
        ep: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": DNS_SERVICE, "namespace": DNS_NAMESPACE, "labels": labels},
            "subsets": subsets,
        }
        for _ in range(5):  # a concurrent writer (an earlier run's) is overwritten: ours is current
            try:
                current = self.api.get("Endpoints", DNS_SERVICE, DNS_NAMESPACE)
            except NotFound:
                try:
                    self.api.create(ep)
                    return
                except AlreadyExists:
                    continue
            new = copy.deepcopy(current)
            new["subsets"] = subsets
            try:
                self.api.update(new)
                return
            except (Conflict, NotFound):
                continue
        log.warning("cluster DNS: could not write Endpoints %s/%s after 5 tries", DNS_NAMESPACE, DNS_SERVICE)
