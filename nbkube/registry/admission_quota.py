"""ResourceQuota admission: refuse a create that would take a namespace over its quota.

A ResourceQuota's `spec.hard` caps what a namespace may hold: object counts (`pods`, `services`,
`replicationcontrollers`, `configmaps`, `secrets`, `count/<plural>[.<group>]`, `services.nodeports`)
and compute (`requests.cpu` = `cpu`, `requests.memory` = `memory`, `limits.cpu`, `limits.memory`).
The Registry runs `QuotaAdmission` last in `default_admission_plugins()`, after LimitRange defaults
and Service allocation, so it charges what will really be stored.

How concurrent creates cannot both slip under the limit (as upstream's quota admission does): the
charge is written into the quota's `status.used` with a compare-and-swap on the quota's
resourceVersion *before* the object is written, and the check uses `status.used`, never a fresh
count (which could not see creates charged but not yet written by other processes). Two creates
racing (threads, processes or machines sharing the store) both read `used`; only one CAS wins and
the loser re-reads the new `used` and checks again. When the write of the object fails afterwards,
`rollback` takes the charge back; after a DELETE, `committed` gives the object's usage back. The
quota controller (`controlplane/controllers/quota.py`) recounts `used` from what exists, which
also frees finished pods and corrects anything deleted through a Registry without this plugin.

Known window (upstream's too): the controller's recount cannot see an object another process has
charged but not yet written (microseconds to milliseconds); if it writes in that window, one
create can go over by that object until the next recount.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from nbkube.api import kinds
from nbkube.api.meta import Obj
from nbkube.api.quantity import QuantityError, parse_decimal
from nbkube.errors import Conflict, Forbidden, NotFound
from nbkube.registry.admission_limitrange import container_amount, format_amount

if TYPE_CHECKING:
    from nbkube.registry.admission import Operation
    from nbkube.registry.registry import Registry

__all__ = [
    "QuotaAdmission",
    "COMPUTE_RESOURCES",
    "usage_of",
    "namespace_usage",
    "kind_for_resource",
    "quota_status",
]

# compute resource name -> (requests|limits, cpu|memory); bare `cpu`/`memory` mean requests
COMPUTE_RESOURCES: dict[str, tuple[str, str]] = {
    "requests.cpu": ("requests", "cpu"),
    "cpu": ("requests", "cpu"),
    "requests.memory": ("requests", "memory"),
    "memory": ("requests", "memory"),
    "limits.cpu": ("limits", "cpu"),
    "limits.memory": ("limits", "memory"),
}
_SERVICE_EXTRAS = ("services.nodeports", "services.loadbalancers")
_CAS_RETRIES = 20
_TERMINAL = ("Succeeded", "Failed")


def kind_for_resource(resource: str) -> str | None:
    """Which kind a quota resource name counts (None for names nbkube does not track)."""
    if resource in COMPUTE_RESOURCES:
        return "Pod"
    if resource in _SERVICE_EXTRAS:
        return "Service"
    name = resource[len("count/") :] if resource.startswith("count/") else resource
    try:
        info = kinds.lookup(name)
    except Exception:
        return None
    # bare names must be a core plural (`pods`), count/ names a plural with its group (`deployments.apps`)
    expected = f"{info.plural}.{info.group}" if info.group else info.plural
    return info.kind if name == expected else None


def _map(parent: Any, key: str) -> dict[str, Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else {}


def _pod_compute(pod: Obj, which: str, resource: str) -> Decimal | None:
    """Sum over containers (init containers run one at a time: the larger of the two wins);
    None when some container does not say (a quota on it then refuses the pod)."""
    spec = _map(pod, "spec")

    def amounts(field: str) -> list[Decimal | None]:
        items = spec.get(field)
        return [container_amount(c, which, resource) for c in (items or []) if isinstance(c, dict)]

    main = amounts("containers")
    if any(a is None for a in main):
        return None
    total = sum((a for a in main if a is not None), Decimal(0))
    init = [a for a in amounts("initContainers") if a is not None]
    return max([total, *init])


def usage_of(obj: Obj, resources: Iterable[str]) -> dict[str, Decimal]:
    """What `obj` counts against each of `resources` (absent: it does not count against it).

    A pod missing a request that a compute resource needs is absent from that key; callers that
    quota it must refuse the pod (`must specify ...`)."""
    kind = obj.get("kind")
    out: dict[str, Decimal] = {}
    if kind == "Pod" and _map(obj, "status").get("phase") in _TERMINAL:
        return out  # finished pods hold no quota, as in Kubernetes
    wanted = tuple(resources)
    key = _cache_key(obj, wanted) if kind == "Pod" else None
    if key is not None:
        cached = _POD_USAGE.get(key)
        if cached is not None:
            return dict(cached)
    out = _usage_of(obj, kind, wanted)
    if key is not None:
        with _POD_USAGE_LOCK:
            if len(_POD_USAGE) >= _POD_USAGE_MAX:
                _POD_USAGE.pop(next(iter(_POD_USAGE)))  # the oldest entry
            _POD_USAGE[key] = dict(out)
    return out


# A stored pod's usage, by (uid, generation, resources): the quota controller asks for the old and
# the new pod on every pod update (every status write), and a pod's spec, all that usage reads
# besides its phase, only changes with its generation. Bounded; the oldest entries go first.
_POD_USAGE: dict[tuple[str, str, tuple[str, ...]], dict[str, Decimal]] = {}
_POD_USAGE_LOCK = threading.Lock()
_POD_USAGE_MAX = 200_000


def _cache_key(obj: Obj, resources: tuple[str, ...]) -> tuple[str, str, tuple[str, ...]] | None:
    meta = _map(obj, "metadata")
    uid, generation = meta.get("uid"), meta.get("generation")
    if not uid or generation is None or not meta.get("resourceVersion"):
        return None  # not stored yet: admission may still change its spec
    return str(uid), str(generation), resources


def _usage_of(obj: Obj, kind: Any, resources: tuple[str, ...]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for r in resources:
        if kind_for_resource(r) != kind:
            continue
        if r in COMPUTE_RESOURCES:
            amount = _pod_compute(obj, *COMPUTE_RESOURCES[r])
            if amount is not None:
                out[r] = amount
        elif r == "services.nodeports":
            spec = _map(obj, "spec")
            ports = spec.get("ports") if spec.get("type") in ("NodePort", "LoadBalancer") else None
            out[r] = Decimal(len(ports) if isinstance(ports, list) else 0)
        elif r == "services.loadbalancers":
            out[r] = Decimal(1 if _map(obj, "spec").get("type") == "LoadBalancer" else 0)
        else:
            out[r] = Decimal(1)
    return out


def namespace_usage(registry: Registry, namespace: str, resources: Iterable[str]) -> dict[str, Decimal]:
    """The authoritative usage of `resources` in `namespace`, counted from the registry."""
    wanted = list(resources)
    used = {r: Decimal(0) for r in wanted if kind_for_resource(r)}
    for kind in sorted({k for r in wanted if (k := kind_for_resource(r))}):
        items, _rv = registry.list(kind, namespace)
        for item in items:
            for r, amount in usage_of(item, wanted).items():
                used[r] += amount
    return used


def _parse_map(values: Any) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for k, v in (values or {}).items() if isinstance(values, dict) else ():
        try:
            out[str(k)] = parse_decimal(v)
        except QuantityError:
            continue  # validation refuses these on write
    return out


def quota_status(hard: dict[str, Any], used: dict[str, Decimal]) -> dict[str, Any]:
    """A ResourceQuota status: hard as written in spec, used in Kubernetes' quantity form."""
    return {
        "hard": dict(hard),
        "used": {r: format_amount(r, used.get(r, Decimal(0))) for r in hard if kind_for_resource(r)},
    }


def _object_name(obj: Obj) -> str:
    try:
        plural = kinds.lookup(str(obj.get("kind"))).plural
    except Exception:
        plural = str(obj.get("kind", "object")).lower()
    return f'{plural} "{(obj.get("metadata") or {}).get("name", "")}"'


def _pairs(values: dict[str, Decimal], names: list[str]) -> str:
    return ",".join(f"{r}={format_amount(r, values[r])}" for r in names)


class QuotaAdmission:
    """Admission plugin: charge creates to the namespace's ResourceQuotas or refuse them."""

    mutates: frozenset[str] = frozenset()  # it charges or refuses, never changes (see admission.py)

    def __init__(self) -> None:
        # one admission decision at a time in this process keeps CAS retries rare; the CAS is what
        # makes it safe across processes
        self._lock = threading.Lock()
        self._pending_lock = threading.Lock()
        # id(obj) -> (namespace, [(quota name, charge)]) for creates charged but not yet written
        self._pending: dict[int, tuple[str, list[tuple[str, dict[str, Decimal]]]]] = {}

    def admit(self, op: Operation, obj: Obj, old: Obj | None, registry: Registry) -> None:
        if op != "CREATE":
            return
        try:
            if not kinds.lookup(str(obj.get("kind"))).namespaced:
                return
        except Exception:
            return
        namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
        quotas = registry.policies("ResourceQuota", namespace)
        if not quotas:
            return
        with self._lock:
            for _attempt in range(_CAS_RETRIES):
                charged: list[tuple[str, dict[str, Decimal]]] = []
                try:
                    for quota in sorted(quotas, key=lambda q: str(q["metadata"]["name"])):
                        charge = self._charge_one(registry, quota, obj, namespace)
                        if charge:
                            charged.append((str(quota["metadata"]["name"]), charge))
                except (Conflict, NotFound):
                    # a quota changed under us (another create charged it): undo and look again
                    self._undo(registry, namespace, charged)
                    quotas, _rv = registry.list("ResourceQuota", namespace)
                    continue
                except BaseException:
                    self._undo(registry, namespace, charged)
                    raise
                if charged:
                    with self._pending_lock:
                        self._pending[id(obj)] = (namespace, charged)
                return
        raise Conflict(
            f"{_object_name(obj)}: could not update the ResourceQuotas of namespace {namespace} "
            f"after {_CAS_RETRIES} attempts (too much contention); try again"
        )

    def committed(self, op: Operation, obj: Obj, old: Obj | None, registry: Registry) -> None:
        if op == "CREATE":
            with self._pending_lock:
                self._pending.pop(id(obj), None)
        elif op == "DELETE" and old is not None:
            self._release_deleted(registry, old)

    def rollback(self, op: Operation, obj: Obj, old: Obj | None, registry: Registry) -> None:
        if op != "CREATE":
            return
        with self._pending_lock:
            entry = self._pending.pop(id(obj), None)
        if entry is not None:
            self._undo(registry, *entry)

    # -- helpers --------------------------------------------------------------------------------

    def _charge_one(self, registry: Registry, quota: Obj, obj: Obj, namespace: str) -> dict[str, Decimal]:
        """Check `obj` against one quota and CAS its charge into status.used; the charge made."""
        qname = str(quota["metadata"]["name"])
        hard_raw = _map(quota, "spec").get("hard") or {}
        hard = _parse_map(hard_raw)
        tracked = [r for r in hard if kind_for_resource(r) == obj.get("kind")]
        if not tracked:
            return {}
        delta = usage_of(obj, tracked)
        missing = sorted(r for r in tracked if r not in delta)
        if missing:
            raise Forbidden(
                f"{_object_name(obj)} is forbidden: failed quota: {qname}: must specify {','.join(missing)}"
            )
        status_used = _parse_map(_map(quota, "status").get("used"))
        all_tracked = [r for r in hard if kind_for_resource(r)]
        if any(r not in status_used for r in all_tracked):
            # never calculated (new quota, no controller yet): count what exists
            status_used = {**self._recount(registry, namespace, qname, all_tracked), **status_used}
        # No recount when over: `used` includes charges of creates still in flight in other
        # processes, which a count of what is stored cannot see (it would let both through).
        over = [r for r in tracked if status_used.get(r, Decimal(0)) + delta[r] > hard[r]]
        if over:
            raise Forbidden(
                f"{_object_name(obj)} is forbidden: exceeded quota: {qname}, "
                f"requested: {_pairs(delta, over)}, used: {_pairs(status_used, over)}, "
                f"limited: {_pairs(hard, over)}"
            )
        new_used = dict(status_used)
        for r in tracked:
            new_used[r] = new_used.get(r, Decimal(0)) + delta[r]
        updated = dict(quota)
        updated["status"] = quota_status(hard_raw, new_used)
        registry.update_status(updated)  # CAS on the resourceVersion we read: Conflict if raced
        return {r: delta[r] for r in tracked}

    def _release_deleted(self, registry: Registry, deleted: Obj) -> None:
        """Give a deleted object's usage back at once (the controller's recount confirms it)."""
        namespace = str((deleted.get("metadata") or {}).get("namespace") or "")
        if not namespace:
            return
        quotas, _rv = registry.list("ResourceQuota", namespace)
        freed: list[tuple[str, dict[str, Decimal]]] = []
        for quota in quotas:
            used = _map(quota, "status").get("used")
            tracked = [
                r
                for r in _map(quota, "spec").get("hard") or {}
                if kind_for_resource(r) == deleted.get("kind")
            ]
            if not isinstance(used, dict) or not tracked:
                continue  # never charged: nothing to give back
            charge = usage_of(deleted, [r for r in tracked if r in used])
            if charge:
                freed.append((str(quota["metadata"]["name"]), charge))
        self._undo(registry, namespace, freed)

    def _recount(
        self, registry: Registry, namespace: str, qname: str, resources: list[str]
    ) -> dict[str, Decimal]:
        """What exists now plus what this process has charged but not yet written."""
        counted = namespace_usage(registry, namespace, resources)
        for r, amount in self._pending_for(namespace, qname).items():
            counted[r] = counted.get(r, Decimal(0)) + amount
        return counted

    def _pending_for(self, namespace: str, qname: str) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        with self._pending_lock:
            for ns, charges in self._pending.values():
                if ns != namespace:
                    continue
                for name, charge in charges:
                    if name == qname:
                        for r, amount in charge.items():
                            out[r] = out.get(r, Decimal(0)) + amount
        return out

    def _undo(
        self, registry: Registry, namespace: str, charged: list[tuple[str, dict[str, Decimal]]]
    ) -> None:
        """Take charges back out of status.used (CAS, retried); a quota gone meanwhile is skipped."""
        for qname, charge in charged:
            for _attempt in range(_CAS_RETRIES):
                try:
                    quota = registry.get("ResourceQuota", qname, namespace)
                    hard_raw = _map(quota, "spec").get("hard") or {}
                    used = _parse_map(_map(quota, "status").get("used"))
                    for r, amount in charge.items():
                        used[r] = max(Decimal(0), used.get(r, Decimal(0)) - amount)
                    quota["status"] = quota_status(hard_raw, used)
                    registry.update_status(quota)
                    break
                except Conflict:
                    continue
                except NotFound:
                    break
