"""The namespace controller: deleting a Namespace deletes everything in it.

The registry deletes a Namespace object at once (and refuses new content in a namespace that no
longer exists, or whose `status.phase` is `Terminating`). This controller then removes every
namespaced object left under that name, kind by kind, through the registry's public calls. A
Namespace that someone marked Terminating (phase or deletionTimestamp) is emptied the same way and
then deleted itself. On start it also sweeps namespaces that vanished while no controller ran.
The control-plane manager starts it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbkube.api import kinds
from nbkube.api.meta import Obj, name
from nbkube.client.controller import Controller
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.errors import Conflict, NotFound

if TYPE_CHECKING:
    from nbkube.client.informer import Informer, InformerFactory
    from nbkube.registry.registry import Registry

__all__ = ["NamespaceController", "delete_namespace_content"]

# Workloads first, so controllers do not recreate pods while the namespace empties; Events last,
# so the deletions stay visible as long as possible.
_FIRST = ("Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "ReplicationController")
_LAST = ("Event",)


def _ordered_kinds() -> list[str]:
    namespaced = [k.kind for k in kinds.KINDS if k.namespaced]
    middle = [k for k in namespaced if k not in _FIRST and k not in _LAST]
    return [*_FIRST, *middle, *_LAST]


def delete_namespace_content(api: Registry, namespace: str) -> int:
    """Delete every namespaced object in `namespace`; returns how many were deleted."""
    deleted = 0
    for kind in _ordered_kinds():
        items, _rv = api.list(kind, namespace)
        for obj in items:
            try:
                api.delete(kind, name(obj), namespace)
                deleted += 1
            except NotFound:
                continue
            except Conflict:
                # written meanwhile: delete whatever version is there now
                try:
                    api.delete(kind, name(obj), namespace)
                    deleted += 1
                except NotFound:
                    continue
    return deleted


def _terminating(ns: Obj) -> bool:
    return (ns.get("status") or {}).get("phase") == "Terminating" or bool(
        (ns.get("metadata") or {}).get("deletionTimestamp")
    )


class NamespaceController(Controller):
    name = "namespace"

    def __init__(
        self, api: Registry, factory: InformerFactory, *, clock: Clock = REAL_CLOCK, workers: int = 1
    ):
        super().__init__(api, factory, clock=clock, workers=workers)
        self.namespaces: Informer = factory.informer("Namespace")
        self.namespaces.add_handler(
            on_add=self._maybe_terminating,
            on_update=lambda old, new: self._maybe_terminating(new),
            on_delete=self.enqueue,
        )

    def _maybe_terminating(self, ns: Obj) -> None:
        if _terminating(ns):
            self.enqueue(ns)

    def start(self) -> None:
        super().start()
        for ns in self.orphaned_namespaces():
            self.queue.add(ns)

    def orphaned_namespaces(self) -> set[str]:
        """Namespaces that hold objects but no longer exist (deleted while nothing was running)."""
        existing = {name(ns) for ns in self.api.list("Namespace")[0]}
        used: set[str] = set()
        for kind in _ordered_kinds():
            if kind == "Event":
                continue  # events alone never justify a sweep (they land in "default" by design)
            for obj in self.api.list(kind)[0]:
                used.add(str((obj.get("metadata") or {}).get("namespace") or "default"))
        return used - existing

    def reconcile(self, key: str) -> None:
        try:
            ns = self.api.get("Namespace", key)
        except NotFound:
            ns = None
        if ns is not None and not _terminating(ns):
            return  # re-created since (or never deleted): its content is wanted
        count = delete_namespace_content(self.api, key)
        if count:
            self.log.info("namespace %s: deleted %d objects", key, count)
        if ns is not None:
            # a Terminating namespace goes once it is empty
            leftovers = any(self.api.list(kind, key)[0] for kind in _ordered_kinds())
            if leftovers:
                self.queue.add_rate_limited(key)
                return
            try:
                self.api.delete(
                    "Namespace", key, resource_version=str(ns["metadata"].get("resourceVersion") or "")
                )
            except (NotFound, Conflict):
                self.queue.add_rate_limited(key)
