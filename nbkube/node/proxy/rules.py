"""What a service proxy must do, computed from Services and Endpoints, independent of how it is done.

The proxies' runner reads EndpointSlices and hands each Service's slices here in the Endpoints
shape (`endpoints_from_slices`), so the computation below has one input form.

Both proxies (the userspace one of the embedded mode and the iptables one of Docker nodes) need the
same table: for every service port, the ClusterIP:port and NodePort to answer on and the ready
backends to spread connections over. Keeping that computation pure and in one place means the two
proxies cannot disagree about which pods a service reaches.

`RuleCache` is the same computation with memory, for the proxy's sync loop: with 1,000 services,
recomputing every rule on each endpoint change costs CPU in proportion to all of them for one
changed service (benchmarks/proxy.py measures the change path). A resourceVersion names one version of one object, so a service whose Service and
Endpoints versions are those of the last sync keeps its rules, as the very same objects; that lets
the proxy below skip unchanged services by identity instead of comparing them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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


SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def slice_service_key(sl: Obj) -> str | None:
    """"namespace/service" of the Service an EndpointSlice belongs to (None: a slice of no Service)."""
    meta = sl.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return f"{meta.get('namespace') or 'default'}/{name}" if name else None


def endpoints_from_slices(key: str, slices: Iterable[Obj]) -> Obj | None:
    """One Service's EndpointSlices as the Endpoints shape the rules are computed from: each slice a
    subset of its ready endpoints (a `ready` condition that is absent counts as ready, as upstream
    reads it). Its resourceVersion joins the slices' versions, so `RuleCache` sees any change; None
    when the Service has no slice."""
    subsets: list[Obj] = []
    versions: list[str] = []
    for sl in sorted(slices, key=lambda s: str((s.get("metadata") or {}).get("name"))):
        if sl.get("addressType", "IPv4") != "IPv4":
            continue
        meta = sl.get("metadata") or {}
        versions.append(f"{meta.get('name')}@{meta.get('resourceVersion') or ''}")
        addresses = [
            {"ip": ep["addresses"][0], "targetRef": ep.get("targetRef") or {}}
            for ep in sl.get("endpoints") or []
            if ep.get("addresses") and (ep.get("conditions") or {}).get("ready") is not False
        ]
        subsets.append({"addresses": addresses, "ports": list(sl.get("ports") or [])})
    if not versions:
        return None
    ns, _, name = key.partition("/")
    unversioned = any(v.endswith("@") for v in versions)
    meta_out: Obj = {"name": name, "namespace": ns}
    if not unversioned:
        meta_out["resourceVersion"] = ",".join(versions)
    return {"metadata": meta_out, "subsets": subsets}


def _service_rules(svc: Obj, key: str, endpoints: Obj | None) -> list[ServicePortRule]:
    """The rules of one service (none for a headless or ExternalName one)."""
    spec = svc.get("spec") or {}
    cluster_ip = spec.get("clusterIP") or ""
    if not cluster_ip or cluster_ip == "None" or spec.get("type") == "ExternalName":
        return []
    affinity = spec.get("sessionAffinity") == "ClientIP"
    timeout = int(
        ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds", 10800)
    )
    rules: list[ServicePortRule] = []
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
                backends=_endpoint_backends(endpoints, name, protocol),
            )
        )
    return rules


def _by_id(rule: ServicePortRule) -> str:
    return rule.id


def compute_rules(services: Iterable[Obj], endpoints: Iterable[Obj]) -> list[ServicePortRule]:
    """The proxy table for these services; services without a ClusterIP (headless) are skipped."""
    endpoints_by_key = {key_of(ep): ep for ep in endpoints}
    rules: list[ServicePortRule] = []
    for svc in services:
        key = key_of(svc)
        rules += _service_rules(svc, key, endpoints_by_key.get(key))
    rules.sort(key=_by_id)
    return rules


def _key_version(obj: Obj) -> tuple[str, str | None]:
    """`key_of(obj)` and its resourceVersion (None when it has none: never cached), read with one
    look at the metadata: this runs for every object on every sync."""
    meta = obj.get("metadata", {})
    ns = str(meta.get("namespace", "") or "")
    nm = str(meta.get("name", ""))
    return (f"{ns}/{nm}" if ns else nm), (meta.get("resourceVersion") or None)


class RuleCache:
    """`compute_rules` that recomputes only services whose Service or Endpoints version changed.

    Same result as `compute_rules` (equal lists, in the same order); the rules of an unchanged
    service are the same objects as last time. Objects without a resourceVersion (hand-made ones in
    tests) are always recomputed. Not thread-safe: one sync loop owns it.
    """

    def __init__(self) -> None:
        # service key -> ((Service version, Endpoints version) or None if unversioned, its rules)
        self._cache: dict[str, tuple[tuple[str, str] | None, list[ServicePortRule]]] = {}
        self._last: list[ServicePortRule] = []  # the table, sorted by rule id
        self._pos: dict[str, int] = {}  # rule id -> index in _last
        self.recomputed = 0  # services computed afresh by the last call, for tests and benchmarks

    def compute(self, services: Iterable[Obj], endpoints: Iterable[Obj]) -> list[ServicePortRule]:
        """The table for all these objects (the cache keeps what is unchanged since last time)."""
        endpoints_by_key: dict[str, tuple[Obj, str | None]] = {}
        for obj in endpoints:
            key, version = _key_version(obj)
            endpoints_by_key[key] = (obj, version)
        old = self._cache
        cache: dict[str, tuple[tuple[str, str] | None, list[ServicePortRule]]] = {}
        changed: list[tuple[list[ServicePortRule] | None, list[ServicePortRule]]] = []
        for svc in services:
            key, sv = _key_version(svc)
            found = endpoints_by_key.get(key)
            ep: Obj | None = found[0] if found is not None else None
            ev = found[1] if found is not None else ""  # "": no Endpoints object, a version too
            hit = old.get(key)
            entry = self._entry(key, svc, sv, ep, ev, hit)
            cache[key] = entry
            if entry is not hit:
                changed.append((hit[1] if hit is not None else None, entry[1]))
        self._cache = cache
        return self._table(changed, same_services=len(cache) == len(old))

    def refresh(
        self,
        keys: Iterable[str],
        service: Callable[[str], Obj | None],
        endpoints: Callable[[str], Obj | None],
    ) -> list[ServicePortRule]:
        """The table after the services `keys` (namespace/name) changed, given how to look up the
        current Service and Endpoints by key (an informer's `get`). Equal to `compute` over all
        objects, as long as every changed key is passed; O(changed services) instead of O(all),
        which is what an endpoint change costs the proxy's sync loop."""
        changed: list[tuple[list[ServicePortRule] | None, list[ServicePortRule]]] = []
        same = True
        for key in set(keys):
            svc = service(key)
            hit = self._cache.get(key)
            if svc is None:
                if hit is not None:
                    del self._cache[key]
                    changed.append((hit[1], []))
                    same = False
                continue
            ep = endpoints(key)
            _, sv = _key_version(svc)
            ev = _key_version(ep)[1] if ep is not None else ""
            entry = self._entry(key, svc, sv, ep, ev, hit)
            if entry is not hit:
                self._cache[key] = entry
                changed.append((hit[1] if hit is not None else None, entry[1]))
                same = same and hit is not None
        return self._table(changed, same_services=same)

    def _entry(
        self,
        key: str,
        svc: Obj,
        sv: str | None,
        ep: Obj | None,
        ev: str | None,
        hit: tuple[tuple[str, str] | None, list[ServicePortRule]] | None,
    ) -> tuple[tuple[str, str] | None, list[ServicePortRule]]:
        """The cache entry for one service: `hit` itself when its versions are those of last time."""
        versions = (sv, ev) if sv is not None and ev is not None else None
        if versions is not None and hit is not None and hit[0] == versions:
            return hit
        return (versions, _service_rules(svc, key, ep))

    def _table(
        self,
        changed: list[tuple[list[ServicePortRule] | None, list[ServicePortRule]]],
        *,
        same_services: bool,
    ) -> list[ServicePortRule]:
        self.recomputed = len(changed)
        # The usual case, some services' endpoints moved: same services, same rule ids, so the new
        # rules take the old ones' places in the sorted table instead of sorting it again.
        in_place = same_services and all(
            before is not None and [r.id for r in before] == [r.id for r in after]
            for before, after in changed
        )
        if in_place:
            for _, after in changed:
                for rule in after:
                    self._last[self._pos[rule.id]] = rule
        else:
            self._last = sorted((r for _, rules in self._cache.values() for r in rules), key=_by_id)
            self._pos = {r.id: i for i, r in enumerate(self._last)}
        return list(self._last)
