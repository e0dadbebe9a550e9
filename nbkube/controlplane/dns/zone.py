"""The cluster's DNS records, computed from Services and EndpointSlices (no I/O; the server asks).

Names, as the Kubernetes DNS specification (and CoreDNS's kubernetes plugin) define them, under the
cluster domain D (`cluster.local`):
- `SVC.NS.svc.D` A: the ClusterIP; for a headless Service, every ready endpoint's address;
  for an ExternalName Service, a CNAME to its external name;
- `HOST.SVC.NS.svc.D` A: a headless Service's endpoint by its hostname (a pod with hostname and
  subdomain: a StatefulSet's `db-2.db.NS.svc.D`), or by its address with dashes (`10-244-1-5`);
- `_PORT._PROTO.SVC.NS.svc.D` SRV for each named port: the Service name for a ClusterIP Service,
  each endpoint's name for a headless one.
- `A-B-C-D.NS.pod.D` A: the address A.B.C.D, as CoreDNS's `pods insecure` (kubeadm's default)
  answers it, without looking the pod up.
A name under D that none of these makes is NXDOMAIN; a name that exists asked for another type is
an empty NOERROR answer. `Zone.update_service` recomputes one Service (called on every change of it
or of its slices), so a change costs one Service's records, never a pass over all of them.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from nbkube.api.meta import Obj

__all__ = ["Answer", "Zone", "service_records"]


@dataclass
class Answer:
    """What the zone knows about one name: addresses, SRV targets, a CNAME."""

    a: list[str] = field(default_factory=list)
    srv: list[tuple[int, str]] = field(default_factory=list)  # (port, target name)
    cname: str = ""


def _lower(name: str) -> str:
    return name.lower().rstrip(".")


def service_records(svc: Obj, slices: Iterable[Obj], domain: str) -> dict[str, Answer]:
    """Every name one Service makes (see the module docstring), lower case, no trailing dot."""
    meta = svc.get("metadata") or {}
    spec = svc.get("spec") or {}
    name, ns = str(meta.get("name") or ""), str(meta.get("namespace") or "default")
    base = _lower(f"{name}.{ns}.svc.{domain}")
    out: dict[str, Answer] = {}
    if spec.get("type") == "ExternalName":
        if spec.get("externalName"):
            out[base] = Answer(cname=_lower(str(spec["externalName"])))
        return out
    cluster_ip = str(spec.get("clusterIP") or "")
    headless = cluster_ip == "None"
    if not headless and not cluster_ip:
        return out
    record = out.setdefault(base, Answer())
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    if not headless:
        record.a.append(cluster_ip)
        for p in ports:
            if p.get("name"):
                srv = _lower(f"_{p['name']}._{str(p.get('protocol') or 'TCP').lower()}.{base}")
                out.setdefault(srv, Answer()).srv.append((int(p["port"]), base))
        return out
    for sl in slices:
        if sl.get("addressType", "IPv4") != "IPv4":
            continue
        for ep in sl.get("endpoints") or []:
            addrs = [str(a) for a in ep.get("addresses") or []]
            if not addrs:
                continue
            publish = bool(spec.get("publishNotReadyAddresses"))
            if (ep.get("conditions") or {}).get("ready") is False and not publish:
                continue
            host = str(ep.get("hostname") or addrs[0].replace(".", "-"))
            host_name = _lower(f"{host}.{base}")
            record.a.extend(a for a in addrs if a not in record.a)
            out.setdefault(host_name, Answer()).a.extend(addrs)
            for p in sl.get("ports") or []:
                if p.get("name") and p.get("port") is not None:
                    srv = _lower(f"_{p['name']}._{str(p.get('protocol') or 'TCP').lower()}.{base}")
                    out.setdefault(srv, Answer()).srv.append((int(p["port"]), host_name))
    return out


class Zone:
    """The records of every Service, by name; thread-safe (informer threads write, the server reads)."""

    def __init__(self, domain: str = "cluster.local"):
        self.domain = _lower(domain)
        self._names: dict[str, Answer] = {}
        self._by_service: dict[str, dict[str, Answer]] = {}  # "ns/name" -> its names
        self._parents: dict[str, int] = {}  # ancestors of the names inside the domain -> how many
        self._lock = threading.Lock()
        self.version = 0  # bumped on every change: the server's answer cache is valid for one version

    def _ancestors(self, name: str) -> list[str]:
        out = []
        while "." in name:
            name = name.split(".", 1)[1]
            if not (name == self.domain or name.endswith("." + self.domain)):
                break
            out.append(name)
        return out

    def in_domain(self, qname: str) -> bool:
        q = _lower(qname)
        return q == self.domain or q.endswith("." + self.domain)

    def update_service(self, key: str, svc: Obj | None, slices: Iterable[Obj]) -> None:
        """Recompute Service `key` ("ns/name"); `svc` None drops its names."""
        records = service_records(svc, slices, self.domain) if svc is not None else {}
        with self._lock:
            self.version += 1
            old = self._by_service.pop(key, {})
            for name in old:
                self._names.pop(name, None)
                for parent in self._ancestors(name):
                    left = self._parents.get(parent, 0) - 1
                    if left > 0:
                        self._parents[parent] = left
                    else:
                        self._parents.pop(parent, None)
            # no two Services make the same name: every name holds its Service's name and namespace
            for name, ans in records.items():
                self._names[name] = ans
                for parent in self._ancestors(name):
                    self._parents[parent] = self._parents.get(parent, 0) + 1
            if records:
                self._by_service[key] = records

    def _pod_address(self, q: str) -> Answer | None:
        suffix = ".pod." + self.domain
        if not q.endswith(suffix):
            return None
        parts = q[: -len(suffix)].split(".")
        if len(parts) != 2 or not parts[1]:
            return None
        try:
            ip = ipaddress.IPv4Address(parts[0].replace("-", "."))
        except ValueError:
            return None
        return Answer(a=[str(ip)])

    def lookup(self, qname: str) -> Answer | None:
        """The records of `qname`; None when the name does not exist (NXDOMAIN if in_domain)."""
        q = _lower(qname)
        pod = self._pod_address(q)
        if pod is not None:
            return pod
        with self._lock:
            ans = self._names.get(q)
            if ans is not None:
                return ans
            # an existing name's parent exists too (`svc.D`, `NS.svc.D`): empty, not NXDOMAIN
            if q == self.domain or q in self._parents:
                return Answer()
        return None
