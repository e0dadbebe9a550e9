"""ClusterIP and NodePort allocation for Services, as an admission plugin.

The Kubernetes API server hands each Service a virtual IP from the service CIDR (10.96.0.0/12 by
default) and each port of a NodePort/LoadBalancer Service a node port (30000-32767), either the one
asked for or a free one. `default_admission_plugins()` puts `ServiceAllocator` in every Registry.

Why one store key per allocation (`/registry/ranges/serviceips/<ip>`,
`/registry/ranges/servicenodeports/<port>`): `store.create` fails with KeyExists when the key is
already there, so claiming an address is one atomic write that several threads, processes or
machines sharing the store can race on safely; nothing is ever handed out twice. A per-process
cursor scans forward from a random start, so an allocation costs O(1) creates while the range is
mostly free; after a bounded number of collisions it lists the range once and picks from the gaps.

Allocations are claimed in `admit` and given back in `rollback` when the write then fails; a
Service's addresses are released in `committed` after its DELETE (or an UPDATE that dropped them),
so a failed delete never frees an address still in use. `repair_allocations` frees what a crashed
process or a plugin-less Registry left behind (the control plane may run it now and then).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import random
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nbkube.api.meta import Obj
from nbkube.errors import FieldError, Forbidden, Invalid
from nbkube.store.base import KeyExists, KeyNotFound, RevisionMismatch

if TYPE_CHECKING:
    from nbkube.registry.admission import Operation
    from nbkube.registry.registry import Registry
    from nbkube.store.base import Store

__all__ = [
    "ServiceAllocator",
    "SERVICE_CIDR",
    "DNS_SERVICE_IP",
    "NODE_PORT_RANGE",
    "IP_PREFIX",
    "NODE_PORT_PREFIX",
    "allocated_ips",
    "allocated_node_ports",
    "repair_allocations",
]

SERVICE_CIDR = "10.96.0.0/12"
NODE_PORT_RANGE = (30000, 32767)
IP_PREFIX = "/registry/ranges/serviceips/"
# the cluster DNS Service's conventional address: handed out only when asked for by name
# (kube-system/kube-dns asks for it), never by the allocator
DNS_SERVICE_IP = "10.96.0.10"
NODE_PORT_PREFIX = "/registry/ranges/servicenodeports/"

# Collisions tolerated on the cursor before one list of the whole range picks from its gaps.
_SCAN_LIMIT = 32
_NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


def _spec(obj: Obj | None) -> dict[str, Any]:
    spec = (obj or {}).get("spec")
    return spec if isinstance(spec, dict) else {}


def _owner(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name') or ''}"


def _wants_ip(spec: dict[str, Any]) -> bool:
    return spec.get("type", "ClusterIP") != "ExternalName" and spec.get("clusterIP") != "None"


def _ip_of(spec: dict[str, Any]) -> str:
    """The IP this spec holds (or asks for); "" for none, headless or ExternalName."""
    if not _wants_ip(spec):
        return ""
    ip = spec.get("clusterIP") or ""
    if not ip:
        ips = spec.get("clusterIPs")
        if isinstance(ips, list) and ips and isinstance(ips[0], str) and ips[0] != "None":
            ip = ips[0]
    return str(ip)


def _node_ports_of(spec: dict[str, Any]) -> set[int]:
    if spec.get("type", "ClusterIP") not in _NODE_PORT_TYPES:
        return set()
    ports = spec.get("ports")
    return {
        int(p["nodePort"])
        for p in (ports if isinstance(ports, list) else [])
        if isinstance(p, dict) and isinstance(p.get("nodePort"), int) and p["nodePort"]
    }


class _Range:
    """One allocation range over the store: offsets 0..size-1 map to keys under `prefix`."""

    def __init__(
        self, prefix: str, size: int, to_text: Any, rng: random.Random, reserved: frozenset[str] = frozenset()
    ):
        self.prefix = prefix
        self.reserved = reserved  # claimable by name, never allocated
        self.size = size
        self._to_text = to_text
        self._cursor = rng.randrange(size)
        self._lock = threading.Lock()

    def _take(self, store: Store, offsets: Iterable[int], owner: str, at: float) -> str | None:
        for offset in offsets:
            text = self._to_text(offset)
            if text in self.reserved:
                continue
            if self.claim(store, text, owner, at):
                with self._lock:
                    self._cursor = (offset + 1) % self.size
                return text
        return None

    def claim(self, store: Store, text: str, owner: str, at: float) -> bool:
        """Take exactly `text` for `owner` ("ns/name") at time `at`; False when it is already held."""
        value = json.dumps({"owner": owner, "at": at}).encode()
        try:
            store.create(self.prefix + text, value)
        except KeyExists:
            return False
        return True

    def allocate(self, store: Store, owner: str, at: float) -> str | None:
        """Any free value, or None when the range is full."""
        with self._lock:
            start = self._cursor
        got = self._take(
            store, ((start + i) % self.size for i in range(min(_SCAN_LIMIT, self.size))), owner, at
        )
        if got is not None:
            return got
        # Crowded near the cursor: one list shows every gap; try a few of them (others race too).
        taken = {kv.key[len(self.prefix) :] for kv in store.list(self.prefix)[0]}
        if len(taken | self.reserved) >= self.size:
            return None
        free: list[int] = []
        for i in range(self.size):  # one lap from the cursor, stopping at enough gaps
            offset = (start + i) % self.size
            if self._to_text(offset) in taken:
                continue
            free.append(offset)
            if len(free) >= _SCAN_LIMIT:
                break
        return self._take(store, free, owner, at)

    def release(self, store: Store, text: str, owner: str) -> None:
        """Give `text` back, but only if `owner` holds it (never free another Service's address)."""
        kv = store.get(self.prefix + text)
        if kv is None:
            return
        try:
            held_by = json.loads(kv.value).get("owner")
        except ValueError:
            held_by = None
        if held_by != owner:
            return
        # someone else released or re-took it meanwhile: theirs now
        with contextlib.suppress(KeyNotFound, RevisionMismatch):
            store.delete(kv.key, kv.mod_revision)


class ServiceAllocator:
    """Admission plugin: allocate on Service CREATE/UPDATE, release on DELETE (see module doc)."""

    mutates = frozenset({"Service"})  # sets spec.clusterIP(s) and nodePorts (see admission.py)

    def __init__(
        self,
        service_cidr: str = SERVICE_CIDR,
        node_port_range: tuple[int, int] = NODE_PORT_RANGE,
        *,
        seed: int | None = None,
    ):
        self.network = ipaddress.ip_network(service_cidr)
        lo, hi = node_port_range
        if lo > hi:
            raise ValueError(f"node port range {lo}-{hi} is empty")
        self.node_port_range = (lo, hi)
        rng = random.Random(seed)
        # the network and broadcast addresses are never handed out
        first = int(self.network.network_address) + 1
        n_ips = max(1, self.network.num_addresses - 2)
        reserved = frozenset({DNS_SERVICE_IP}) if ipaddress.ip_address(DNS_SERVICE_IP) in self.network else frozenset()
        self._ips = _Range(IP_PREFIX, n_ips, lambda o: str(ipaddress.ip_address(first + o)), rng, reserved)
        self._ports = _Range(NODE_PORT_PREFIX, hi - lo + 1, lambda o: str(lo + o), rng)

    # -- the plugin -----------------------------------------------------------------------------

    def admit(self, op: Operation, obj: Obj, old: Obj | None, registry: Registry) -> None:
        if obj.get("kind") != "Service" or op == "DELETE":
            return
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        store = registry.store
        owner = _owner(obj)
        at = registry.clock.now()
        old_spec = _spec(old)
        claimed_ip = ""
        claimed_ports: list[int] = []
        try:
            if _wants_ip(spec):
                claimed_ip = self._admit_ip(store, spec, _ip_of(old_spec), owner, obj, at)
            claimed_ports = self._admit_node_ports(store, spec, _node_ports_of(old_spec), owner, obj, at)
        except BaseException:
            # nothing half-claimed: give back what this request took before the refusal
            if claimed_ip:
                self._ips.release(store, claimed_ip, owner)
            for port in claimed_ports:
                self._ports.release(store, str(port), owner)
            raise

    def rollback(self, op: Operation, obj: Obj, old: Obj | None, registry: Registry) -> None:
        """The write failed: give back what this request added over the stored object."""
        if obj.get("kind") != "Service" or op == "DELETE":
            return
        self._release(registry.store, _owner(obj), _spec(obj), _spec(old))

    def committed(self, op: Operation, obj: Obj, old: Obj | None, registry: Registry) -> None:
        """The write stuck: free what the stored object held and the new one no longer does."""
        if obj.get("kind") != "Service" or old is None:
            return
        new_spec = {} if op == "DELETE" else _spec(obj)
        self._release(registry.store, _owner(old), _spec(old), new_spec)

    # -- helpers --------------------------------------------------------------------------------

    def _release(self, store: Store, owner: str, spec: dict[str, Any], keep: dict[str, Any]) -> None:
        ip = _ip_of(spec)
        if ip and ip != _ip_of(keep):
            self._ips.release(store, ip, owner)
        for port in _node_ports_of(spec) - _node_ports_of(keep):
            self._ports.release(store, str(port), owner)

    def _admit_ip(
        self, store: Store, spec: dict[str, Any], old_ip: str, owner: str, obj: Obj, at: float
    ) -> str:
        """Fill spec.clusterIP(s); returns the IP newly claimed by this request ("" if none)."""
        requested = _ip_of(spec)
        if requested and requested == old_ip:
            return ""  # kept from the stored object
        if requested:
            path = "spec.clusterIP" if spec.get("clusterIP") else "spec.clusterIPs[0]"
            try:
                addr = ipaddress.ip_address(requested)
            except ValueError:
                return ""  # validation reports malformed IPs
            if addr not in self.network or addr in (
                self.network.network_address,
                self.network.broadcast_address,
            ):
                raise _invalid(
                    obj,
                    path,
                    f'"{requested}"',
                    f"provided IP is not in the valid range. The range of valid IPs is {self.network}",
                )
            if not self._ips.claim(store, requested, owner, at):
                raise _invalid(obj, path, f'"{requested}"', "provided IP is already allocated")
            ip = requested
        else:
            got = self._ips.allocate(store, owner, at)
            if got is None:
                raise Forbidden(
                    f'services "{_name(obj)}" is forbidden: failed to allocate a serviceIP: '
                    f"range is full ({self.network})"
                )
            ip = got
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
        return ip

    def _admit_node_ports(
        self, store: Store, spec: dict[str, Any], old_ports: set[int], owner: str, obj: Obj, at: float
    ) -> list[int]:
        """Fill ports[].nodePort for NodePort/LoadBalancer; returns the ports newly claimed."""
        if spec.get("type", "ClusterIP") not in _NODE_PORT_TYPES:
            return []
        ports = spec.get("ports")
        items = [
            (i, p) for i, p in enumerate(ports if isinstance(ports, list) else []) if isinstance(p, dict)
        ]
        lo, hi = self.node_port_range
        claimed: list[int] = []
        mine = set(old_ports)  # ports this Service already holds, or has claimed in this request
        try:
            # requested ports first, so an auto-allocated one never takes a port asked for later
            for i, p in items:
                port = p.get("nodePort")
                if not isinstance(port, int) or not port or port in mine:
                    continue
                path = f"spec.ports[{i}].nodePort"
                if not lo <= port <= hi:
                    raise _invalid(
                        obj,
                        path,
                        str(port),
                        f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}",
                    )
                if not self._ports.claim(store, str(port), owner, at):
                    raise _invalid(obj, path, str(port), "provided port is already allocated")
                claimed.append(port)
                mine.add(port)
            for _i, p in items:
                if isinstance(p.get("nodePort"), int) and p["nodePort"]:
                    continue
                got = self._ports.allocate(store, owner, at)
                if got is None:
                    raise Forbidden(
                        f'services "{_name(obj)}" is forbidden: failed to allocate a nodePort: '
                        f"range {lo}-{hi} is full"
                    )
                p["nodePort"] = int(got)
                claimed.append(int(got))
                mine.add(int(got))
        except BaseException:
            for port in claimed:
                self._ports.release(store, str(port), owner)
            raise
        return claimed


def repair_allocations(registry: Registry, *, min_age: float = 60.0) -> list[str]:
    """Release allocations no Service holds any more; returns the keys released.

    Leaks come from a process that died between claiming and writing its Service, or a Service
    deleted through a Registry built without this plugin. An allocation younger than `min_age`
    seconds (registry clock) may belong to a create still in flight and is left alone, as the
    upstream repair loops leave fresh ones. Each release is guarded by the key's mod revision."""
    store = registry.store
    now = registry.clock.now()
    held: set[str] = set()
    services, _rv = registry.list("Service")
    for service in services:
        spec = _spec(service)
        if ip := _ip_of(spec):
            held.add(IP_PREFIX + ip)
        held.update(f"{NODE_PORT_PREFIX}{port}" for port in _node_ports_of(spec))
    released: list[str] = []
    for prefix in (IP_PREFIX, NODE_PORT_PREFIX):
        for kv in store.list(prefix)[0]:
            if kv.key in held:
                continue
            try:
                at = float(json.loads(kv.value).get("at", 0.0))
            except (ValueError, TypeError, AttributeError):
                at = 0.0
            if now - at < min_age:
                continue
            with contextlib.suppress(KeyNotFound, RevisionMismatch):
                store.delete(kv.key, kv.mod_revision)
                released.append(kv.key)
    return released


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _invalid(obj: Obj, path: str, shown: str, detail: str) -> Invalid:
    return Invalid([FieldError(path, f"Invalid value: {shown}: {detail}")], kind="Service", name=_name(obj))


def _texts(kvs: Iterable[Any], prefix: str) -> list[str]:
    return [kv.key[len(prefix) :] for kv in kvs]


def allocated_ips(store: Store) -> list[str]:
    """Every ClusterIP currently held (for tests, `describe` and repair tooling)."""
    return _texts(store.list(IP_PREFIX)[0], IP_PREFIX)


def allocated_node_ports(store: Store) -> list[int]:
    """Every NodePort currently held."""
    return sorted(int(t) for t in _texts(store.list(NODE_PORT_PREFIX)[0], NODE_PORT_PREFIX))
