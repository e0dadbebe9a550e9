"""The disruption controller: keep every PodDisruptionBudget's status true, as upstream's.

The eviction subresource (registry/eviction.py) decides from a budget's status alone, so this
controller is what makes a budget mean anything: for each PodDisruptionBudget it counts the pods its
selector matches and writes

- `expectedPods` and `desiredHealthy`: with an integer `minAvailable`, the matching pods and that
  number; with a percentage `minAvailable` or any `maxUnavailable`, the scale of the pods' owning
  controllers (a ReplicaSet's, or its Deployment's when it has one; a ReplicationController's; a
  StatefulSet's when nbkube serves that kind), the percentage rounded up; a matching pod whose
  controller is none of those makes the sync fail (condition reason SyncFailed, as upstream's
  "found no controllers for pod"); pods with no controller at all are left out and named in a
  Warning event (UnmanagedPods);
- `currentHealthy`: Ready pods not being deleted and not in `disruptedPods` (evicted, not yet seen
  gone; an entry older than two minutes no longer counts);
- `disruptionsAllowed` = currentHealthy - desiredHealthy (never negative; 0 when no pod is expected);
- condition `DisruptionAllowed`: True/SufficientPods, False/InsufficientPods, or False/SyncFailed
  with the error. A budget that selects no pod says "No matching pods found" in the condition and
  in a NoPods event.

`budget_counts` and `healthy_count` are pure, for the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbkube.api import kinds
from nbkube.api.intstr import resolve_int_or_percent
from nbkube.api.meta import Obj, controller_of, key_of, split_key
from nbkube.api.selectors import selector_from_label_selector
from nbkube.client.controller import Controller
from nbkube.clock import REAL_CLOCK, Clock, parse_rfc3339, rfc3339
from nbkube.controlplane.controllers.writes import event, write_status
from nbkube.errors import BadRequest, NbkubeError
from nbkube.registry.eviction import is_healthy

if TYPE_CHECKING:
    from nbkube.client.informer import Informer, InformerFactory
    from nbkube.registry.registry import Registry

__all__ = ["DisruptionController", "budget_counts", "healthy_count", "NoControllers", "DELETION_TIMEOUT"]

COMPONENT = "controllermanager"
DELETION_TIMEOUT = 120.0  # upstream: an evicted pod not seen deleted by then counts again
CONDITION = "DisruptionAllowed"
NO_PODS = "No matching pods found"
_SCALE_KINDS = ("ReplicaSet", "ReplicationController", "Deployment", "StatefulSet")


class NoControllers(NbkubeError):
    """A matching pod's controller is not one whose scale the budget can read."""


ScaleOf = Callable[[Obj], tuple[str, int] | None]  # pod -> (controller uid, replicas); None: no controller


def budget_counts(pdb: Obj, pods: list[Obj], scale_of: ScaleOf) -> tuple[int, int, list[str]]:
    """(expectedPods, desiredHealthy, unmanaged pod names) for `pdb` over its matching `pods`.

    Raises NoControllers (upstream's SyncFailed) when a scale is needed and a pod's controller has
    none that nbkube can read."""
    spec = pdb.get("spec") or {}
    max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
    if max_unavailable is None and min_available is None:
        return 0, 0, []
    if max_unavailable is None and isinstance(min_available, int):
        return len(pods), int(min_available), []
    scales: dict[str, int] = {}
    unmanaged: list[str] = []
    for pod in pods:
        name = str((pod.get("metadata") or {}).get("name") or "")
        if controller_of(pod) is None:
            unmanaged.append(name)
            continue
        found = scale_of(pod)
        if found is None:
            raise NoControllers(f'found no controllers for pod "{name}"')
        scales[found[0]] = found[1]
    expected = sum(scales.values())
    if max_unavailable is not None:
        unavailable = resolve_int_or_percent(max_unavailable, expected, True)
        return expected, max(0, expected - unavailable), unmanaged
    return expected, resolve_int_or_percent(min_available, expected, True), unmanaged


def healthy_count(pods: list[Obj], disrupted: dict[str, str], now: float) -> tuple[int, dict[str, str], float | None]:
    """(currentHealthy, the disruptedPods entries still pending, when the soonest of them expires)."""
    pending: dict[str, str] = {}
    soonest: float | None = None
    for pod in pods:
        meta = pod.get("metadata") or {}
        name = str(meta.get("name") or "")
        if meta.get("deletionTimestamp") or name not in disrupted:
            continue
        try:
            expires = parse_rfc3339(disrupted[name]) + DELETION_TIMEOUT
        except ValueError:
            continue
        if expires > now:
            pending[name] = disrupted[name]
            soonest = expires if soonest is None else min(soonest, expires)
    healthy = sum(1 for p in pods if is_healthy(p) and str((p.get("metadata") or {}).get("name")) not in pending)
    return healthy, pending, soonest


class DisruptionController(Controller):
    """Writes the status of every PodDisruptionBudget (see module doc)."""

    name = "disruption"

    def __init__(self, api: Registry, factory: InformerFactory, *, clock: Clock = REAL_CLOCK, workers: int = 1):
        super().__init__(api, factory, clock=clock, workers=workers)
        self.budgets: Informer = factory.informer("PodDisruptionBudget")
        self.pods: Informer = factory.informer("Pod")
        self.controllers: dict[str, Informer] = {}
        for kind in _SCALE_KINDS:
            try:
                kinds.lookup(kind)
            except BadRequest:
                continue  # a kind this build does not serve has no pods to count
            self.controllers[kind] = factory.informer(kind)
        self.budgets.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new))
        self.pods.add_handler(
            on_add=self._pod_changed,
            on_update=self._pod_updated,
            on_delete=self._pod_changed,
        )
        for informer in self.controllers.values():
            informer.add_handler(
                on_add=self._scale_changed,
                on_update=lambda old, new: self._scale_changed(new),
                on_delete=self._scale_changed,
            )

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        self._pod_changed(old)  # a pod whose labels changed leaves one budget for another
        self._pod_changed(new)

    def _pod_changed(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        for pdb in self.budgets.by_index("namespace", str(meta.get("namespace") or "default")):
            try:
                if selector_from_label_selector((pdb.get("spec") or {}).get("selector")).matches(labels):
                    self.enqueue(pdb)
            except NbkubeError:
                continue

    def _scale_changed(self, obj: Obj) -> None:
        for pdb in self.budgets.by_index("namespace", str((obj.get("metadata") or {}).get("namespace") or "default")):
            self.enqueue(pdb)

    def _scale_of(self, pod: Obj) -> tuple[str, int] | None:
        """The scale of the pod's controller, as upstream's finders (a Deployment's for its ReplicaSets)."""
        ref = controller_of(pod)
        if ref is None:
            return None
        ns = str((pod.get("metadata") or {}).get("namespace") or "default")
        owner = self._owner(str(ref.get("kind")), ns, str(ref.get("name")), ref.get("uid"))
        if owner is None:
            return None
        if owner.get("kind") == "ReplicaSet":
            parent_ref = controller_of(owner)
            if parent_ref is not None and parent_ref.get("kind") == "Deployment":
                parent = self._owner("Deployment", ns, str(parent_ref.get("name")), parent_ref.get("uid"))
                if parent is not None:
                    owner = parent
        replicas = (owner.get("spec") or {}).get("replicas", 1)
        return str((owner.get("metadata") or {}).get("uid")), int(replicas if isinstance(replicas, int) else 1)

    def _owner(self, kind: str, ns: str, name: str, uid: Any) -> Obj | None:
        informer = self.controllers.get(kind)
        if informer is None:
            return None
        obj = informer.get(f"{ns}/{name}")
        if obj is None or (uid and (obj.get("metadata") or {}).get("uid") != uid):
            return None
        return obj

    def reconcile(self, key: str) -> None:
        pdb = self.budgets.get(key)
        if pdb is None:
            return
        ns, _name = split_key(key)
        selector = selector_from_label_selector((pdb.get("spec") or {}).get("selector"))
        pods = [
            p
            for p in self.pods.by_index("namespace", ns or "default")
            if selector.matches((p.get("metadata") or {}).get("labels") or {})
        ]
        now = self.clock.now()
        status = dict(pdb.get("status") or {})
        healthy, pending, soonest = healthy_count(pods, dict(status.get("disruptedPods") or {}), now)
        if soonest is not None:
            self.queue.add_after(key, soonest - now + 0.001)
        error = ""
        # events go out only with a status change, so a steady budget writes nothing
        events: list[tuple[str, str, bool]] = []
        try:
            expected, desired, unmanaged = budget_counts(pdb, pods, self._scale_of)
        except NoControllers as exc:
            expected = desired = 0
            unmanaged = []
            error = str(exc)
            events.append(("NoControllers", error, True))
        if unmanaged:
            names = ", ".join(sorted(unmanaged))
            events.append(("UnmanagedPods", f"Pods not managed by a controller are ignored: {names}", True))
        if not pods:
            events.append(("NoPods", NO_PODS, False))
        allowed = healthy - desired if expected > 0 and not error else 0
        allowed = max(0, allowed)
        status.update(
            observedGeneration=int((pdb.get("metadata") or {}).get("generation") or 1),
            disruptionsAllowed=allowed,
            currentHealthy=healthy,
            desiredHealthy=desired,
            expectedPods=expected,
        )
        if pending:
            status["disruptedPods"] = pending
        else:
            status.pop("disruptedPods", None)
        if error:
            cond = ("False", "SyncFailed", error)
        elif allowed > 0:
            cond = ("True", "SufficientPods", "")
        else:
            cond = ("False", "InsufficientPods", NO_PODS if not pods else "")
        status["conditions"] = self._condition(status.get("conditions") or [], cond, status["observedGeneration"], now)
        if status == (pdb.get("status") or {}):
            return
        for reason, message, warning in events:
            self._event(pdb, reason, message, warning=warning)
        write_status(self, key_of(pdb), pdb, status)  # a conflict: an eviction spent the budget meanwhile

    @staticmethod
    def _condition(conditions: list[Any], cond: tuple[str, str, str], generation: int, now: float) -> list[Any]:
        out = [dict(c) for c in conditions if isinstance(c, dict) and c.get("type") != CONDITION]
        old = next((c for c in conditions if isinstance(c, dict) and c.get("type") == CONDITION), None)
        status, reason, message = cond
        since = rfc3339(now)
        if old is not None and old.get("status") == status and old.get("lastTransitionTime"):
            since = str(old["lastTransitionTime"])
        out.append(
            {
                "type": CONDITION,
                "status": status,
                "observedGeneration": generation,
                "lastTransitionTime": since,
                "reason": reason,
                "message": message,
            }
        )
        return out

    def _event(self, pdb: Obj, reason: str, message: str, *, warning: bool = False) -> None:
        event(self, pdb, reason, message, COMPONENT, warning=warning)
