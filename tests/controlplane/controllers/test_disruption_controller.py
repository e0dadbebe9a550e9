"""PodDisruptionBudgets: the math (minAvailable/maxUnavailable as counts and percentages against the
controllers' scale), disruptedPods, the controller's status and conditions (a budget selecting
nothing says so), the eviction subresource's 429 naming the budget, and drain stopping on it."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import pytest
from nbk_workload_helpers import FakeKubelet, started, wait_for

from nbkube.api.meta import Obj
from nbkube.api.validation import validate
from nbkube.client.informer import InformerFactory
from nbkube.client.maintenance import DrainBlocked, drain
from nbkube.clock import rfc3339
from nbkube.controlplane.controllers.deployment import DeploymentController
from nbkube.controlplane.controllers.disruption import (
    DELETION_TIMEOUT,
    DisruptionController,
    NoControllers,
    budget_counts,
    healthy_count,
)
from nbkube.controlplane.controllers.replication import ReplicaSetController, ReplicationManager
from nbkube.errors import NbkubeError, NotFound, TooManyRequests
from nbkube.registry.registry import Registry


def pdb(name: str = "web-pdb", selector: dict[str, Any] | None = None, **spec: Any) -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}} if selector is None else selector, **spec},
    }


def pod(name: str, *, ready: bool = True, owner: str | None = "rs-uid", deleting: bool = False) -> Obj:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "labels": {"app": "web"}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": owner, "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = rfc3339(0)
    return {
        "metadata": meta,
        "spec": {},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def scale(replicas: int) -> Any:
    return lambda p: ("rs-uid", replicas)


# --- the math -----------------------------------------------------------------------------------


def test_min_available_integer_counts_matching_pods() -> None:
    pods = [pod("a"), pod("b"), pod("c")]
    assert budget_counts(pdb(minAvailable=2), pods, scale(5)) == (3, 2, [])


def test_percentages_and_max_unavailable_use_the_controllers_scale() -> None:
    pods = [pod("a"), pod("b"), pod("c")]
    assert budget_counts(pdb(minAvailable="50%"), pods, scale(5)) == (5, 3, [])  # 2.5 rounds up
    assert budget_counts(pdb(maxUnavailable=1), pods, scale(5)) == (5, 4, [])
    assert budget_counts(pdb(maxUnavailable="30%"), pods, scale(5)) == (5, 3, [])  # 1.5 -> 2 unavailable
    assert budget_counts(pdb(maxUnavailable=9), pods, scale(5)) == (5, 0, [])
    # pods without a controller are left out and named; an unknown controller fails the sync
    assert budget_counts(pdb(maxUnavailable=1), [*pods, pod("bare", owner=None)], scale(3)) == (3, 2, ["bare"])
    with pytest.raises(NoControllers, match='found no controllers for pod "a"'):
        budget_counts(pdb(maxUnavailable=1), pods, lambda p: None)
    assert budget_counts(pdb(), pods, scale(3)) == (0, 0, [])  # neither field: nothing may go


def test_healthy_count_skips_unready_deleting_and_recently_disrupted() -> None:
    pods = [pod("a"), pod("b", ready=False), pod("c", deleting=True), pod("d"), pod("e")]
    disrupted = {"d": rfc3339(100), "e": rfc3339(100 - DELETION_TIMEOUT - 1), "gone": rfc3339(100)}
    healthy, pending, soonest = healthy_count(pods, disrupted, now=110.0)
    assert healthy == 2 and pending == {"d": rfc3339(100)}  # e's entry expired: e counts again
    assert soonest == 100 + DELETION_TIMEOUT


def test_validation_of_budgets() -> None:
    assert validate(pdb(minAvailable=1)) == []
    errs = [str(e) for e in validate(pdb(minAvailable=1, maxUnavailable=1))]
    assert errs == ['spec: Invalid value: "": minAvailable and maxUnavailable cannot be both set']
    errs = [str(e) for e in validate(pdb(minAvailable="x", maxUnavailable=None))]
    assert errs == ["spec.minAvailable: Invalid value: \"x\": must be an integer or percentage (e.g. '5%')"]
    assert [str(e) for e in validate(pdb(minAvailable=-1))] == ["spec.minAvailable: Invalid value: -1: must be greater than or equal to 0"]
    errs = [str(e) for e in validate(pdb(minAvailable=1, unhealthyPodEvictionPolicy="Never"))]
    assert errs and errs[0].startswith("spec.unhealthyPodEvictionPolicy: Unsupported value")


# --- controller, eviction and drain on a live registry ---------------------------------------------


@pytest.fixture
def controllers(api: Registry, factory: InformerFactory, kubelet: FakeKubelet) -> Iterator[None]:
    running = [
        DisruptionController(api, factory),
        DeploymentController(api, factory),
        ReplicaSetController(api, factory),
        ReplicationManager(api, factory),
    ]
    with started(factory, *running):
        for name in kubelet.nodes:  # the fake kubelet binds pods to these names; drain needs the Nodes
            api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
        yield


def deployment(replicas: int) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }


def status(api: Registry, name: str = "web-pdb") -> dict[str, Any]:
    return api.get("PodDisruptionBudget", name, "default").get("status") or {}


def condition(api: Registry, name: str = "web-pdb") -> dict[str, Any]:
    return next((c for c in status(api, name).get("conditions") or [] if c["type"] == "DisruptionAllowed"), {})


def web_pods(api: Registry) -> list[Obj]:
    return [p for p in api.list("Pod", "default", label_selector="app=web")[0] if not p["metadata"].get("deletionTimestamp")]


def test_budget_status_eviction_429_and_drain(api: Registry, controllers: None) -> None:
    api.create(pdb(name="empty", selector={"matchLabels": {"app": "nothing"}}, minAvailable=1))
    wait_for(lambda: condition(api, "empty").get("reason") == "InsufficientPods", what="empty budget status")
    assert condition(api, "empty")["message"] == "No matching pods found" and status(api, "empty")["expectedPods"] == 0
    assert any(
        e["reason"] == "NoPods" and e["involvedObject"]["name"] == "empty" for e in api.list("Event", "default")[0]
    )

    api.create(deployment(3))
    api.create(pdb(maxUnavailable=1))
    wait_for(
        lambda: status(api).get("currentHealthy") == 3 and status(api).get("disruptionsAllowed") == 1,
        what="budget allowing 1 disruption",
        detail=lambda: status(api),
    )
    assert (status(api)["expectedPods"], status(api)["desiredHealthy"]) == (3, 2)
    assert condition(api)["status"] == "True" and condition(api)["reason"] == "SufficientPods"
    first, second = sorted(p["metadata"]["name"] for p in web_pods(api))[:2]
    api.evict(first, "default")
    # the eviction records the pod in disruptedPods; the controller drops the entry as soon as it
    # sees the pod deleting, and counts it out of currentHealthy instead: either is what it saw
    after = status(api)
    assert after["disruptionsAllowed"] == 0
    assert first in (after.get("disruptedPods") or {}) or after["currentHealthy"] == 2, after
    with pytest.raises(TooManyRequests) as exc:
        api.evict(second, "default")
    assert "web-pdb" in str(exc.value)
    [cause] = exc.value.causes
    assert cause["reason"] == "DisruptionBudget"
    # "has 3" until the controller counts the evicted pod out, "has 2" after: either is what it saw
    assert cause["message"] in {
        f"The disruption budget web-pdb needs 2 healthy pods and has {n} currently" for n in (2, 3)
    }
    assert api.get("Pod", second, "default")  # still there
    with pytest.raises(NotFound):
        api.evict("nobody", "default")

    # drain: the node's web pods are protected by the budget while the replacement is not ready
    wait_for(lambda: len(web_pods(api)) == 3 and status(api).get("disruptionsAllowed") == 1, what="replacement ready")
    node = web_pods(api)[0]["spec"]["nodeName"]
    budget = api.get("PodDisruptionBudget", "web-pdb", "default")
    budget["spec"] = {"minAvailable": 3, "selector": budget["spec"]["selector"]}
    api.update(budget)
    wait_for(lambda: status(api).get("disruptionsAllowed") == 0 and status(api).get("observedGeneration") == 2, what="budget at 0")
    on_node = [p["metadata"]["name"] for p in web_pods(api) if p["spec"].get("nodeName") == node]
    with pytest.raises(DrainBlocked) as blocked:
        drain(api, node, timeout=0.3, retry_interval=0.05)
    assert "web-pdb" in str(blocked.value)
    assert sorted(blocked.value.blocked) == sorted(f"default/{n}" for n in on_node)
    assert all("The disruption budget web-pdb needs 3 healthy pods" in v for v in blocked.value.blocked.values())


def test_two_budgets_for_one_pod_are_refused(api: Registry) -> None:
    created = api.create({**pod("x"), "apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": "n"}})
    running = copy.deepcopy(created)
    running["status"] = {"phase": "Running"}
    api.update_status(running)
    api.create(pdb(name="one", minAvailable=0))
    api.create(pdb(name="two", minAvailable=0))
    with pytest.raises(NbkubeError, match="more than one PodDisruptionBudget"):
        api.evict("x", "default")
    # a pending pod is evicted whatever its budgets say
    pending = {**pod("y"), "apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    pending["status"] = {"phase": "Pending"}
    api.create(pending)
    api.evict("y", "default")
    with pytest.raises(NotFound):
        api.get("Pod", "y", "default")


def test_unhealthy_pods_and_the_eviction_policy(api: Registry) -> None:
    for name, ready in (("ok", True), ("sick", False)):
        created = api.create(
            {**pod(name, ready=ready), "apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": "n"}}
        )
        created["status"] = pod(name, ready=ready)["status"]
        api.update_status(created)

    def budget(policy: str, healthy: int, desired: int) -> None:
        with contextlib.suppress(NotFound):  # the first call has none to replace
            api.delete("PodDisruptionBudget", "web-pdb", "default")
        obj = api.create(pdb(minAvailable=desired, unhealthyPodEvictionPolicy=policy))
        obj["status"] = {"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": healthy,
                         "desiredHealthy": desired, "expectedPods": 2}  # fmt: skip
        api.update_status(obj)

    # IfHealthyBudget: an unhealthy pod goes without spending only while the budget is met
    budget("IfHealthyBudget", healthy=0, desired=1)
    with pytest.raises(TooManyRequests):
        api.evict("sick", "default")
    budget("IfHealthyBudget", healthy=1, desired=1)
    with pytest.raises(TooManyRequests):
        api.evict("ok", "default")  # a healthy pod still needs the budget
    api.evict("sick", "default", dry_run=True)
    assert api.get("Pod", "sick", "default")
    budget("AlwaysAllow", healthy=0, desired=1)
    api.evict("sick", "default")
    with pytest.raises(NotFound):
        api.get("Pod", "sick", "default")
    assert status(api)["disruptionsAllowed"] == 0 and "disruptedPods" not in status(api)
