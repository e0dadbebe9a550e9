"""The writes every owning controller makes the same way, so each makes them through one function.

The ReplicaSet/RC, DaemonSet, StatefulSet, Job and CronJob controllers all adopt and release
dependents with a compare-and-swap write of their controller reference, find which of their objects
an event concerns from that reference, and write their status only when it changed, backing off on
a conflict, and record Normal or Warning events as their component. The rules are upstream's
ControllerRefManager and status updaters; keeping them here keeps the controllers from drifting
apart (architecture.md, "Controllers and the scheduler").
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from nbkube.api.meta import Obj, controller_of
from nbkube.client.events import record_event
from nbkube.errors import Conflict, NotFound

if TYPE_CHECKING:
    from nbkube.client.controller import Controller
    from nbkube.registry.registry import Registry

__all__ = ["controller_key", "event", "set_controller_ref", "write_status"]


def controller_key(obj: Obj, kind: str) -> str | None:
    """`namespace/name` of the `kind` controlling `obj` (from its controller reference), or None."""
    ref = controller_of(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    return f"{(obj.get('metadata') or {}).get('namespace') or 'default'}/{ref.get('name')}"


def set_controller_ref(api: Registry, obj: Obj, ref: dict[str, Any], *, adopt: bool) -> Obj | None:
    """Adopt `obj` (put the owner reference `ref` in place of any of the same uid) or release it
    (remove the references of that uid) with a CAS write. None when `obj` changed or went meanwhile:
    the informer brings the news and another pass."""
    new = copy.deepcopy(obj)
    meta = new["metadata"]
    refs = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != ref.get("uid")]
    if adopt:
        refs.append(ref)
    if refs:
        meta["ownerReferences"] = refs
    else:
        meta.pop("ownerReferences", None)
    try:
        return api.update(new)
    except (Conflict, NotFound):
        return None


def write_status(ctrl: Controller, key: str, obj: Obj, status: dict[str, Any]) -> Obj | None:
    """Write `status` as `obj`'s status when it differs from the one `obj` has (with `obj`'s
    resourceVersion). Returns the written object; None when nothing was written: unchanged, gone,
    or a conflict (then `key` is requeued with back-off, to be computed again from a fresh cache)."""
    if status == (obj.get("status") or {}):
        return None
    new = copy.deepcopy(obj)
    new["status"] = status
    try:
        return ctrl.api.update_status(new)
    except NotFound:
        return None
    except Conflict:
        ctrl.queue.add_rate_limited(key)
        return None


def event(ctrl: Controller, obj: Obj, reason: str, message: str, component: str, *, warning: bool = False) -> None:
    """Record a Normal (or, with `warning`, a Warning) event about `obj` from `component`."""
    record_event(
        ctrl.api,
        obj,
        reason,
        message,
        type="Warning" if warning else "Normal",
        component=component,
        clock=ctrl.clock,
    )
