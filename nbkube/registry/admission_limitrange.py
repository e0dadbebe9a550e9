"""LimitRange admission: default containers' requests/limits and enforce per-namespace bounds.

A LimitRange (`type: Container`) lets a namespace owner give every container default requests and
limits and set `min`/`max`/`maxLimitRequestRatio`; `type: Pod` bounds the sum over a pod's
containers. Kubernetes' LimitRanger admission plugin applies them when a Pod is created; this is
the same, run by the Registry through `default_admission_plugins()` before quota admission (so a
quota on requests sees the defaulted amounts).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING, Any

from nbkube.api.meta import Obj
from nbkube.api.quantity import QuantityError, format_cpu, format_memory, parse_decimal
from nbkube.errors import Forbidden

if TYPE_CHECKING:
    from nbkube.registry.admission import Operation
    from nbkube.registry.registry import Registry

__all__ = ["LimitRanger", "container_amount", "format_amount"]


def _map(parent: Any, key: str) -> dict[str, Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else {}


def _containers(pod: Obj) -> list[dict[str, Any]]:
    items = _map(pod, "spec").get("containers")
    return [c for c in items if isinstance(c, dict)] if isinstance(items, list) else []


def _amount(value: Any) -> Decimal | None:
    try:
        return parse_decimal(value)
    except QuantityError:
        return None  # validation reports malformed quantities


def container_amount(container: dict[str, Any], which: str, resource: str) -> Decimal | None:
    """A container's request or limit for `resource`; a missing request counts as the limit,
    as Kubernetes' defaulting makes it (requests default to limits)."""
    resources = _map(container, "resources")
    value = _map(resources, which).get(resource)
    if value is None and which == "requests":
        value = _map(resources, "limits").get(resource)
    return None if value is None else _amount(value)


def _show(value: Any) -> str:
    return str(value)


def _ratio(limit: Decimal, request: Decimal) -> str:
    return f"{limit / request:.6f}"


class LimitRanger:
    """Admission plugin: LimitRange defaults and bounds on Pod CREATE."""

    mutates = frozenset({"Pod"})  # fills container requests/limits (see admission.py)

    def admit(self, op: Operation, obj: Obj, old: Obj | None, registry: Registry) -> None:
        if obj.get("kind") != "Pod" or op == "DELETE":
            return
        if op == "UPDATE":
            _keep_stored_defaults(obj, old)
            return
        namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
        ranges = registry.policies("LimitRange", namespace)
        if not ranges:
            return
        items = [
            item
            for lr in sorted(ranges, key=lambda r: str(r["metadata"].get("name", "")))
            for item in (_map(lr, "spec").get("limits") or [])
            if isinstance(item, dict)
        ]
        containers = _containers(obj)
        for item in items:
            if item.get("type") == "Container":
                for c in containers:
                    _apply_defaults(c, item)
        problems: list[str] = []
        for item in items:
            if item.get("type") == "Container":
                for c in containers:
                    problems += _check_container(c, item)
            elif item.get("type") == "Pod":
                problems += _check_pod(containers, item)
        if problems:
            name = (obj.get("metadata") or {}).get("name") or ""
            raise Forbidden(f'pods "{name}" is forbidden: ' + "; ".join(problems))


def _fill(container: dict[str, Any], field: str, missing: dict[str, Any]) -> None:
    """Add `missing` entries to container.resources[field] (creating the maps only when needed)."""
    if not missing:
        return
    resources = container.get("resources")
    if not isinstance(resources, dict):
        resources = container["resources"] = {}
    if not isinstance(resources.get(field), dict):
        resources[field] = {}
    resources[field].update(missing)


def _apply_defaults(container: dict[str, Any], item: dict[str, Any]) -> None:
    # what the container leaves out comes from the first LimitRange that defines it; a request the
    # container leaves out but whose limit it sets is that limit (Kubernetes defaults requests to
    # limits before admission), not the namespace's defaultRequest
    own_limits = dict(_map(_map(container, "resources"), "limits"))
    for field, source in (("requests", "defaultRequest"), ("limits", "default")):
        current = _map(_map(container, "resources"), field)
        _fill(
            container,
            field,
            {
                r: own_limits.get(r, v) if field == "requests" else v
                for r, v in _map(item, source).items()
                if r not in current
            },
        )


def _keep_stored_defaults(new: Obj, old: Obj | None) -> None:
    """On a pod update, what admission filled in at create and the new object leaves out stays
    (a re-applied manifest omits the defaults, and pod resources are immutable)."""
    stored = {c.get("name"): c for c in _containers(old or {})}
    for c in _containers(new):
        before = _map(stored.get(c.get("name")), "resources")
        for field in ("requests", "limits"):
            current = _map(_map(c, "resources"), field)
            _fill(c, field, {r: v for r, v in _map(before, field).items() if r not in current})


def _check_container(c: dict[str, Any], item: dict[str, Any]) -> list[str]:
    where = f'container "{c.get("name", "")}"'
    return _check_bounds(
        item,
        "Container",
        where,
        lambda which, res: container_amount(c, which, res),
    )


def _check_pod(containers: list[dict[str, Any]], item: dict[str, Any]) -> list[str]:
    def total(which: str, resource: str) -> Decimal | None:
        amounts = [container_amount(c, which, resource) for c in containers]
        if not amounts or any(a is None for a in amounts):
            return None
        return sum((a for a in amounts if a is not None), Decimal(0))

    return _check_bounds(item, "Pod", "pod", total)


def _check_bounds(item: dict[str, Any], scope: str, where: str, amount: Any) -> list[str]:
    problems: list[str] = []
    for resource, bound in _map(item, "min").items():
        low = _amount(bound)
        request = amount("requests", resource)
        if low is None:
            continue
        if request is None:
            problems.append(
                f"minimum {resource} usage per {scope} is {_show(bound)}, but no request is specified ({where})"
            )
        elif request < low:
            problems.append(
                f"minimum {resource} usage per {scope} is {_show(bound)}, but request is {format_amount(resource, request)} ({where})"
            )
    for resource, bound in _map(item, "max").items():
        high = _amount(bound)
        limit = amount("limits", resource)
        if high is None:
            continue
        if limit is None:
            problems.append(
                f"maximum {resource} usage per {scope} is {_show(bound)}, but no limit is specified ({where})"
            )
        elif limit > high:
            problems.append(
                f"maximum {resource} usage per {scope} is {_show(bound)}, but limit is {format_amount(resource, limit)} ({where})"
            )
    for resource, bound in _map(item, "maxLimitRequestRatio").items():
        most = _amount(bound)
        limit, request = amount("limits", resource), amount("requests", resource)
        if most is None or limit is None or request is None or request == 0:
            continue
        if limit / request > most:
            problems.append(
                f"{resource} max limit to request ratio per {scope} is {_show(bound)}, "
                f"but provided ratio is {_ratio(limit, request)} ({where})"
            )
    return problems


def format_amount(resource: str, amount: Decimal) -> str:
    """An amount back in the form Kubernetes prints it: `500m`/`2` cpu, `64Mi` memory, counts plain."""
    if "cpu" in resource:
        return format_cpu(int((amount * 1000).to_integral_value(rounding=ROUND_CEILING)))
    if "memory" in resource or "storage" in resource:
        return format_memory(int(amount.to_integral_value(rounding=ROUND_CEILING)))
    if amount == amount.to_integral_value():
        return str(int(amount))
    return str(amount.normalize())
