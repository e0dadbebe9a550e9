"""The garbage collector: deletes objects whose owners (by ownerReference uid) are gone.

`nbkube delete rc nginx` removes only the RC; its pods are then dependents without an owner, and
this controller deletes them (Kubernetes' default "Background" propagation). With
`--cascade=orphan` the registry strips the ownerReferences before the owner goes, so there is
nothing left for this controller to collect. An object with several owners loses only the
references to owners that are gone, and is deleted only when none is left.

It watches the dependent kinds (pods, ReplicaSets, ... see DEPENDENT_KINDS): when one arrives or
its ownerReferences change, its owners are checked; when any object of these kinds is deleted,
the dependents that pointed at it are queued; a dependent with an owner of another kind (a
CronJob) is checked again at each of its updates. An owner missing from the informer cache is
confirmed with a live read before anything is deleted (the cache of the owner's kind may simply
lag the dependent's).
The control-plane manager starts it.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from nbkube.api import kinds
from nbkube.api.meta import Obj, key_of, owner_references, split_key
from nbkube.client.controller import Controller
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.errors import Conflict, NbkubeError, NotFound

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from nbkube.client.informer import Informer, InformerFactory
    from nbkube.registry.registry import Registry

__all__ = ["GarbageCollector", "DEPENDENT_KINDS"]

DEPENDENT_KINDS: tuple[str, ...] = (
    "Pod",
    "ReplicaSet",
    "ReplicationController",
    "Deployment",
    "DaemonSet",
    "StatefulSet",
    "ControllerRevision",
    "PersistentVolumeClaim",
    "Job",
    "Service",
    "Endpoints",
    "ConfigMap",
    "Secret",
)


class GarbageCollector(Controller):
    """Queue keys are "Kind|namespace/name" of possible dependents."""

    name = "garbagecollector"

    def __init__(
        self,
        api: Registry,
        factory: InformerFactory,
        *,
        clock: Clock = REAL_CLOCK,
        workers: int = 1,
        dependent_kinds: Sequence[str] = DEPENDENT_KINDS,
    ):
        super().__init__(api, factory, clock=clock, workers=workers)
        self.informers: dict[str, Informer] = {}
        for kind in dependent_kinds:
            info = kinds.lookup(kind)
            inf = factory.informer(info.kind)
            self.informers[info.kind] = inf
            on_add, on_update = self._handlers_for(info.kind)
            inf.add_handler(on_add=on_add, on_update=on_update, on_delete=self._owner_gone)

    def _handlers_for(self, kind: str) -> tuple[Callable[[Obj], None], Callable[[Obj, Obj], None]]:
        def on_add(obj: Obj) -> None:
            self._maybe_dependent(kind, obj)

        def on_update(old: Obj, new: Obj) -> None:
            # Owners are checked when a dependent arrives, when its references change, and when
            # an owner of a kind watched here is deleted (`_owner_gone`). An update that leaves
            # the references as they were (every status write of every pod) has nothing new to
            # check, unless an owner is of a kind whose deletions this collector does not see
            # (a CronJob's Jobs): then each update is its chance to notice, as before.
            refs = owner_references(new)
            if refs and (
                refs != owner_references(old) or any(r.get("kind") not in self.informers for r in refs)
            ):
                self.queue.add(f"{kind}|{key_of(new)}")

        return on_add, on_update

    def _maybe_dependent(self, kind: str, obj: Obj) -> None:
        if owner_references(obj):
            self.queue.add(f"{kind}|{key_of(obj)}")

    def _owner_gone(self, owner: Obj) -> None:
        uid = (owner.get("metadata") or {}).get("uid")
        if not uid:
            return
        ns = (owner.get("metadata") or {}).get("namespace") or ""
        for kind, inf in self.informers.items():
            candidates = inf.by_index("namespace", ns) if ns and kinds.lookup(kind).namespaced else inf.list()
            for obj in candidates:
                if any(r.get("uid") == uid for r in owner_references(obj)):
                    self.queue.add(f"{kind}|{key_of(obj)}")

    def _owner_exists(self, ref: dict[str, object], namespace: str) -> bool:
        kind = str(ref.get("kind") or "")
        name = str(ref.get("name") or "")
        try:
            info = kinds.lookup(kind)
        except NbkubeError:
            return True  # a kind we do not serve: never delete on a guess
        ns = namespace if info.namespaced else ""
        inf = self.informers.get(info.kind)
        if inf is not None:
            cached = inf.get(f"{ns}/{name}" if ns else name)
            if cached is not None and (cached.get("metadata") or {}).get("uid") == ref.get("uid"):
                return True
        try:
            live = self.api.get(info.kind, name, ns)
        except NotFound:
            return False
        return (live.get("metadata") or {}).get("uid") == ref.get("uid")

    def reconcile(self, key: str) -> None:
        kind, _, obj_key = key.partition("|")
        inf = self.informers.get(kind)
        obj = inf.get(obj_key) if inf is not None else None
        if obj is None:
            return
        refs = owner_references(obj)
        if not refs:
            return
        ns, name = split_key(obj_key)
        dangling = [r for r in refs if not self._owner_exists(r, ns)]
        if not dangling:
            return
        if len(dangling) == len(refs):
            self.log.info("deleting %s %s: owner %s is gone", kind, obj_key, dangling[0].get("name"))
            try:
                self.api.delete(
                    kind,
                    name,
                    ns,
                    resource_version=str((obj.get("metadata") or {}).get("resourceVersion") or ""),
                )
            except NotFound:
                return
            except Conflict:
                # changed since we looked (maybe adopted): look again with the fresh object
                self.queue.add_rate_limited(key)
            return
        new = copy.deepcopy(obj)
        gone = {r.get("uid") for r in dangling}
        new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") not in gone]
        try:
            self.api.update(new)
        except NotFound:
            return
        except Conflict:
            self.queue.add_rate_limited(key)
