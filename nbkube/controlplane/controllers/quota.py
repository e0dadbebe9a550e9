"""The ResourceQuota controller: keep every quota's `status.hard` and `status.used` current.

Quota admission (`registry/admission_quota.py`) charges creates into `status.used`, but nothing
there gives usage back when objects go away or pods finish. This controller does, as upstream's
resource-quota controller: whenever a pod, service, replication controller, config map or secret
in a namespace is added, deleted or changes what it counts for, each quota of that namespace is
queued and `reconcile` recounts its usage from the registry (not the informer caches, which may
lag) and writes the status with a compare-and-swap on the quota's resourceVersion; a conflict
(admission charged meanwhile) is retried. A slow periodic resync catches kinds it does not watch
(`count/deployments.apps`, ...). The control-plane manager starts it with the other controllers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbkube.api.meta import Obj, split_key
from nbkube.client.controller import Controller
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.errors import NotFound
from nbkube.registry.admission_quota import (
    COMPUTE_RESOURCES,
    kind_for_resource,
    namespace_usage,
    quota_status,
    usage_of,
)

if TYPE_CHECKING:
    from nbkube.client.informer import InformerFactory
    from nbkube.registry.registry import Registry

__all__ = ["QuotaController", "WATCHED_KINDS", "RESYNC_SECONDS"]

WATCHED_KINDS = ("Pod", "Service", "ReplicationController", "ConfigMap", "Secret")
RESYNC_SECONDS = 300.0
# every resource name a watched object can count for, to tell whether an update changed its usage
_ALL_RESOURCES = (
    *COMPUTE_RESOURCES,
    "pods",
    "services",
    "services.nodeports",
    "services.loadbalancers",
    "replicationcontrollers",
    "configmaps",
    "secrets",
)


class QuotaController(Controller):
    name = "resourcequota"

    def __init__(
        self,
        api: Registry,
        factory: InformerFactory,
        *,
        clock: Clock = REAL_CLOCK,
        workers: int = 1,
        resync: float = RESYNC_SECONDS,
    ):
        super().__init__(api, factory, clock=clock, workers=workers)
        self.resync = resync
        self.quotas = factory.informer("ResourceQuota")
        self.quotas.add_handler(on_add=self.enqueue, on_update=self._quota_updated)
        for kind in WATCHED_KINDS:
            factory.informer(kind).add_handler(
                on_add=self._object_changed,
                on_update=self._object_updated,
                on_delete=self._object_changed,
            )

    # -- handlers: only enqueue ---------------------------------------------------------------------

    def _quota_updated(self, old: Obj, new: Obj) -> None:
        # our own status writes come back here: only spec changes (or a missing status) need work
        if old.get("spec") != new.get("spec") or _status_hard(new) != _spec_hard(new):
            self.enqueue(new)

    def _object_changed(self, obj: Obj) -> None:
        for quota in self._quotas_tracking(obj):
            self.enqueue(quota)

    def _object_updated(self, old: Obj, new: Obj) -> None:
        # Every pod status write lands here: without a quota that counts the kind in its namespace
        # (most namespaces) nothing is computed, nor kept in usage_of's cache.
        quotas = self._quotas_tracking(new)
        if quotas and usage_of(old, _ALL_RESOURCES) != usage_of(new, _ALL_RESOURCES):
            for quota in quotas:
                self.enqueue(quota)

    def _quotas_tracking(self, obj: Obj) -> list[Obj]:
        namespace = str((obj.get("metadata") or {}).get("namespace") or "")
        kind = str(obj.get("kind", ""))
        return [q for q in self.quotas.by_index("namespace", namespace) if _tracks(q, kind)]

    # -- reconcile ----------------------------------------------------------------------------------

    def reconcile(self, key: str) -> None:
        namespace, name = split_key(key)
        try:
            quota = self.api.get("ResourceQuota", name, namespace)
        except NotFound:
            return
        hard = _spec_hard(quota)
        used = namespace_usage(self.api, namespace, [r for r in hard if kind_for_resource(r)])
        status = quota_status(hard, used)
        if quota.get("status") != status:
            quota["status"] = status
            self.api.update_status(quota)  # Conflict => retried with backoff by the base class
        if self.resync > 0:
            self.queue.add_after(key, self.resync)


def _spec_hard(quota: Obj) -> dict[str, Any]:
    hard = (quota.get("spec") or {}).get("hard")
    return dict(hard) if isinstance(hard, dict) else {}


def _status_hard(quota: Obj) -> dict[str, Any]:
    hard = (quota.get("status") or {}).get("hard")
    return dict(hard) if isinstance(hard, dict) else {}


def _tracks(quota: Obj, kind: str) -> bool:
    return any(kind_for_resource(r) == kind for r in _spec_hard(quota))
