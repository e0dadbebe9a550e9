"""What a service proxy must do, computed from Services and Endpoints, independent of how it is done.

Both proxies (the userspace one of the embedded mode and the iptables one of Docker nodes) need the
same table: for every service port, the ClusterIP:port and NodePort to answer on and the ready
backends to spread connections over. Keeping that computation pure and in one place means the two
proxies cannot disagree about which pods a service reaches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from nbkube.api.meta import Obj, key_of


@dataclass(frozen=True)
class Backend:
    ip: str
    port: int
    pod: str = ""  # "namespace/name" of the pod behind the address, for reporting


@dataclass(frozen=True)
class ServicePortRule:
    """One service port: where it listens and where it forwards."""

    service: str  # "namespace/name"
    port_name: str
    protocol: str
    cluster_ip: str
    port: int
    node_port: int | None
    session_affinity: bool
    affinity_timeout: int
    backends: tuple[Backend, ...] = field(default=())

    @property
    def id(self) -> str:
        """Stable identity of the rule, e.g. `default/web:http`; used for chain and listener names."""
        return f"{self.service}:{self.port_name}" if self.port_name else self.service


def _endpoint_backends(endpoints: Obj | None, port_name: str, protocol: str) -> tuple[Backend, ...]:
    if not endpoints:
        return ()
    backends: list[Backend] = []
    for subset in endpoints.get("subsets") or []:
        ports = subset.get("ports") or []
        matching = [
            p
            for p in ports
            if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == protocol
        ]
        if not matching and len(ports) == 1 and not port_name:
            matching = ports
        for port in matching:
            for address in subset.get("addresses") or []:
                ref = address.get("targetRef") or {}
                pod = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else ""
                backends.append(Backend(address["ip"], int(port["port"]), pod))
    # Sorted so that two syncs of the same endpoints produce identical rules (no needless rewrites).
    return tuple(sorted(set(backends), key=lambda b: (b.ip, b.port)))


def compute_rules(services: Iterable[Obj], endpoints: Iterable[Obj]) -> list[ServicePortRule]:
    """The proxy table for these services; services without a ClusterIP (headless) are skipped."""
    endpoints_by_key = {key_of(ep): ep for ep in endpoints}
    rules: list[ServicePortRule] = []
    for svc in services:
        spec = svc.get("spec") or {}
        cluster_ip = spec.get("clusterIP") or ""
        if not cluster_ip or cluster_ip == "None" or spec.get("type") == "ExternalName":
            continue
        affinity = spec.get("sessionAffinity") == "ClientIP"
        timeout = int(
            ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds", 10800)
        )
        key = key_of(svc)
        for port in spec.get("ports") or []:
            name = port.get("name") or ""
            protocol = port.get("protocol") or "TCP"
            rules.append(
                ServicePortRule(
                    service=key,
                    port_name=name,
                    protocol=protocol,
                    cluster_ip=cluster_ip,
                    port=int(port["port"]),
                    node_port=int(port["nodePort"]) if port.get("nodePort") else None,
                    session_affinity=affinity,
                    affinity_timeout=timeout,
                    backends=_endpoint_backends(endpoints_by_key.get(key), name, protocol),
                )
            )
    rules.sort(key=lambda r: r.id)
    return rules
