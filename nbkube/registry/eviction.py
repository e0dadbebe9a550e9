"""The eviction subresource: delete a pod only if its PodDisruptionBudget allows it.

`POST pods/NAME/eviction` (what `kubectl drain` sends) and `Registry.evict` both come here, so the
API server, the in-process drain (client/maintenance.py) and the notebook share one rule, upstream's
(kube-apiserver's eviction REST storage):
- a pod that is finished, Pending or already being deleted goes at once (evicting it costs no
  availability);
- no budget selects the pod: it is deleted; more than one: refused (500, as upstream: the
  subresource cannot decrement two budgets atomically);
- the budget's controller has not observed its latest generation yet: 429;
- an unhealthy (not Ready) pod goes without spending the budget when the budget's
  `unhealthyPodEvictionPolicy` is AlwaysAllow, or (IfHealthyBudget, the default) when the budget is
  met anyway;
- otherwise the budget must allow a disruption: `disruptionsAllowed` is decremented and the pod is
  recorded in `disruptedPods` (so the disruption controller does not count it healthy any more) in
  one compare-and-swap status write before the pod is deleted; a budget at 0 answers 429
  TooManyRequests with a `DisruptionBudget` cause naming the budget and its counts.

nbkube's 429 message also names the budget (upstream's says only "Cannot evict pod as it would
violate the pod's disruption budget."; kubectl drain prints the message, not the causes, and a user
should be told which budget holds the node).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from nbkube.api.meta import Obj
from nbkube.api.selectors import selector_from_label_selector
from nbkube.clock import rfc3339
from nbkube.errors import Conflict, Forbidden, NbkubeError, TooManyRequests

if TYPE_CHECKING:
    from nbkube.registry.registry import Registry

__all__ = ["evict", "budgets_for", "is_healthy", "DISRUPTION_BUDGET_CAUSE", "MAX_DISRUPTED_PODS"]

DISRUPTION_BUDGET_CAUSE = "DisruptionBudget"
MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."
MAX_DISRUPTED_PODS = 2000  # upstream's MaxDisruptedPodSize
_CAS_RETRIES = 10


def is_healthy(pod: Obj) -> bool:
    """Counts as healthy for a budget: Ready and not being deleted."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
        if isinstance(c, dict)
    )


def budgets_for(api: Registry, pod: Obj) -> list[Obj]:
    """The PodDisruptionBudgets of the pod's namespace whose selector matches it (a budget with no
    selector selects nothing; `{}` selects every pod)."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    budgets, _rv = api.list("PodDisruptionBudget", str(meta.get("namespace") or "default"))
    out = []
    for pdb in budgets:
        try:
            selector = selector_from_label_selector((pdb.get("spec") or {}).get("selector"))
        except NbkubeError:
            continue  # never true of a validated object
        if selector.matches(labels):
            out.append(pdb)
    return out


def _refuse(detail: str) -> TooManyRequests:
    return TooManyRequests(f"{MESSAGE} {detail}", [{"reason": DISRUPTION_BUDGET_CAUSE, "message": detail}])


def _spend(api: Registry, pdb: Obj, pod_name: str, dry_run: bool) -> None:
    """Decrement the budget for `pod_name` (CAS on the budget's status), or raise why not."""
    name = str((pdb.get("metadata") or {}).get("name"))
    status = pdb.get("status") or {}
    generation = int((pdb.get("metadata") or {}).get("generation") or 0)
    if int(status.get("observedGeneration") or 0) < generation:
        raise _refuse(f"The disruption budget {name} is still being processed by the server.")
    allowed = int(status.get("disruptionsAllowed") or 0)
    if allowed < 0:
        raise Forbidden(f'poddisruptionbudgets.policy "{name}" is forbidden: pdb disruptions allowed is negative')
    disrupted = dict(status.get("disruptedPods") or {})
    if len(disrupted) > MAX_DISRUPTED_PODS:
        raise Forbidden(
            f'poddisruptionbudgets.policy "{name}" is forbidden: DisruptedPods map too big - too many '
            "evictions not confirmed by PDB controller"
        )
    if allowed == 0:
        raise _refuse(
            f"The disruption budget {name} needs {int(status.get('desiredHealthy') or 0)} healthy pods "
            f"and has {int(status.get('currentHealthy') or 0)} currently",
        )
    if dry_run:
        return
    new = copy.deepcopy(pdb)
    new_status = new.setdefault("status", {})
    new_status["disruptionsAllowed"] = allowed - 1
    disrupted[pod_name] = rfc3339(api.clock.now())
    new_status["disruptedPods"] = disrupted
    if allowed - 1 == 0:
        for cond in new_status.get("conditions") or []:
            if cond.get("type") == "DisruptionAllowed" and cond.get("status") != "False":
                cond.update(
                    status="False",
                    reason="InsufficientPods",
                    message="",
                    lastTransitionTime=rfc3339(api.clock.now()),
                )
    api.update_status(new)  # Conflict: the caller reads everything again


def evict(
    api: Registry,
    name: str,
    namespace: str,
    *,
    dry_run: bool = False,
    resource_version: str | None = None,
) -> Obj:
    """Evict one pod (see module doc); returns the deleted pod. NotFound when there is none."""
    for attempt in range(_CAS_RETRIES):
        pod = api.get("Pod", name, namespace)
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        free = phase in ("Succeeded", "Failed", "Pending") or bool((pod.get("metadata") or {}).get("deletionTimestamp"))
        if not free:
            budgets = budgets_for(api, pod)
            if len(budgets) > 1:
                raise NbkubeError(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
                )
            if budgets:
                pdb = budgets[0]
                status = pdb.get("status") or {}
                policy = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") or "IfHealthyBudget"
                desired = int(status.get("desiredHealthy") or 0)
                unhealthy_goes = not is_healthy(pod) and (
                    policy == "AlwaysAllow"
                    or (int(status.get("currentHealthy") or 0) >= desired > 0)
                )
                if not unhealthy_goes:
                    try:
                        _spend(api, pdb, name, dry_run)
                    except Conflict:
                        if attempt == _CAS_RETRIES - 1:
                            raise
                        continue
        return api.delete(
            "Pod",
            name,
            namespace,
            resource_version=resource_version or None,
            dry_run=dry_run,
        )
    raise AssertionError("unreachable")
