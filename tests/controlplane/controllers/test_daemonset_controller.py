"""DaemonSet controller: which nodes run a daemon pod (selector, affinity, taints and the automatic
tolerations), the pod it makes (affinity on the node's name, revision labels), nodes coming and
going, rolling update and OnDelete (pure `plan`), then the controller with the real scheduler."""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from nbk_workload_helpers import started, wait_for

from nbkube.api.defaults import apply_defaults
from nbkube.api.meta import Obj
from nbkube.api.validation import validate
from nbkube.client.informer import InformerFactory
from nbkube.clock import rfc3339
from nbkube.controlplane.controllers.daemonset import (
    REVISION_HASH_LABEL,
    DaemonSetController,
    daemon_pod,
    node_should_run,
    plan,
    pod_node,
    revision_hash,
)
from nbkube.controlplane.controllers.gc import GarbageCollector
from nbkube.controlplane.scheduler.scheduler import Scheduler
from nbkube.errors import Conflict, NotFound
from nbkube.registry.registry import Registry


def ds_manifest(name: str = "agent", **spec: Any) -> Obj:
    pod_spec: dict[str, Any] = {"containers": [{"name": "a", "image": "busybox"}]}
    pod_spec.update(spec.pop("pod", {}))
    obj = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "default", "generation": 1, "uid": "ds-uid"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
            **spec,
        },
    }
    return apply_defaults(obj)


def node(name: str, labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None) -> Obj:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def running(ds: Obj, node_name: str, *, ready: bool = True, hash_: str | None = None, name: str = "", at: float = 0.0) -> Obj:
    pod = daemon_pod(ds, node_name, hash_ or revision_hash(ds))
    pod["metadata"].update(name=name or f"p-{node_name}", uid=name or f"uid-{node_name}", creationTimestamp=rfc3339(at))
    pod["spec"]["nodeName"] = node_name
    pod["status"] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": rfc3339(at)}],
    }
    return pod


# --- which nodes --------------------------------------------------------------------------------


def test_node_selector_and_required_affinity_pick_nodes() -> None:
    ds = ds_manifest(pod={"nodeSelector": {"disk": "ssd"}})
    assert node_should_run(ds, node("a", {"disk": "ssd"})) == (True, True)
    assert node_should_run(ds, node("b", {"disk": "hdd"})) == (False, False)
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]}]
            }
        }
    }
    ds = ds_manifest(pod={"affinity": affinity})
    assert node_should_run(ds, node("a", {"zone": "x"}))[0]
    assert not node_should_run(ds, node("a", {"zone": "y"}))[0]


def test_taints_and_the_automatic_tolerations() -> None:
    ds = ds_manifest()
    # the conditions every daemon pod tolerates: cordon, pressure, not-ready/unreachable NoExecute
    for key, effect in (
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
    ):
        assert node_should_run(ds, node("a", taints=[{"key": key, "effect": effect}])) == (True, True), key
    # a NotReady node's NoSchedule taint: no new pod, but the one there keeps running
    not_ready = node("a", taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}])
    assert node_should_run(ds, not_ready) == (False, True)
    # network-unavailable only for host-network pods
    net = node("a", taints=[{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}])
    assert node_should_run(ds, net)[0] is False
    assert node_should_run(ds_manifest(pod={"hostNetwork": True}), net)[0] is True
    # a user taint: NoSchedule keeps the running pod, NoExecute removes it, a toleration admits both
    assert node_should_run(ds, node("a", taints=[{"key": "gpu", "effect": "NoSchedule"}])) == (False, True)
    assert node_should_run(ds, node("a", taints=[{"key": "gpu", "effect": "NoExecute"}])) == (False, False)
    tolerant = ds_manifest(pod={"tolerations": [{"key": "gpu", "operator": "Exists"}]})
    assert node_should_run(tolerant, node("a", taints=[{"key": "gpu", "effect": "NoExecute"}])) == (True, True)
    assert node_should_run(ds, node("a", taints=[{"key": "gpu", "effect": "PreferNoSchedule"}])) == (True, True)


def test_daemon_pod_is_pinned_by_node_affinity_and_labelled() -> None:
    user_affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]}]
            },
            "preferredDuringSchedulingIgnoredDuringExecution": [],
        }
    }
    ds = ds_manifest(pod={"affinity": user_affinity, "tolerations": [{"key": "gpu", "operator": "Exists"}]})
    pod = daemon_pod(ds, "node-7", revision_hash(ds))
    required = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required == {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-7"]}]}]
    }
    assert "preferredDuringSchedulingIgnoredDuringExecution" in pod["spec"]["affinity"]["nodeAffinity"]
    assert "nodeName" not in pod["spec"]  # the scheduler binds it
    assert pod_node(pod) == "node-7"
    keys = [t["key"] for t in pod["spec"]["tolerations"]]
    assert keys[0] == "gpu" and "node.kubernetes.io/unschedulable" in keys and len(keys) == 7
    labels = pod["metadata"]["labels"]
    assert labels["app"] == "agent" and labels[REVISION_HASH_LABEL] == revision_hash(ds)
    assert labels["pod-template-generation"] == "1"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    pod["metadata"]["name"] = "x"
    assert validate(apply_defaults(pod)) == []
    # the template itself is untouched
    assert ds["spec"]["template"]["spec"]["affinity"] == user_affinity


# --- plan ---------------------------------------------------------------------------------------


def test_plan_creates_on_every_eligible_node_and_counts() -> None:
    ds = ds_manifest(pod={"nodeSelector": {"role": "w"}})
    nodes = [node("a", {"role": "w"}), node("b", {"role": "w"}), node("c")]
    p = plan(ds, nodes, [], now=100.0)
    assert p.create == ["a", "b"] and p.delete == []
    assert p.status["desiredNumberScheduled"] == 2 and p.status["currentNumberScheduled"] == 0
    pods = [running(ds, "a"), running(ds, "b", ready=False)]
    p = plan(ds, nodes, pods, now=100.0)
    assert p.create == [] and p.delete == []
    assert {k: p.status[k] for k in ("currentNumberScheduled", "numberReady", "numberAvailable", "numberUnavailable")} == {
        "currentNumberScheduled": 2,
        "numberReady": 1,
        "numberAvailable": 1,
        "numberUnavailable": 1,
    }
    assert p.status["updatedNumberScheduled"] == 2 and p.status["observedGeneration"] == 1


def test_plan_node_added_removed_relabelled() -> None:
    ds = ds_manifest(pod={"nodeSelector": {"role": "w"}})
    pods = [running(ds, "a"), running(ds, "gone")]
    p = plan(ds, [node("a", {"role": "w"}), node("new", {"role": "w"})], pods, now=0.0)
    assert p.create == ["new"]
    assert [(d[0]["metadata"]["name"], d[1]) for d in p.delete] == [("p-gone", "its node gone does not exist")]
    # a node that lost its label loses its pod and counts as misscheduled meanwhile
    p = plan(ds, [node("a")], [running(ds, "a")], now=0.0)
    assert [d[0]["metadata"]["name"] for d in p.delete] == ["p-a"]
    assert p.status["numberMisscheduled"] == 1 and p.status["desiredNumberScheduled"] == 0


def test_plan_replaces_failed_pods_and_removes_duplicates() -> None:
    ds = ds_manifest()
    failed = running(ds, "a")
    failed["status"]["phase"] = "Failed"
    p = plan(ds, [node("a")], [failed], now=0.0)
    assert p.create == [] and p.delete[0][1] == "it failed (it is replaced)"  # recreated once it is gone
    old, young = running(ds, "b", name="old", at=1.0), running(ds, "b", name="young", at=5.0)
    p = plan(ds, [node("b")], [young, old], now=10.0)
    assert [d[0]["metadata"]["name"] for d in p.delete] == ["young"]


def test_rolling_update_respects_max_unavailable() -> None:
    ds = ds_manifest()  # maxUnavailable 1, maxSurge 0
    nodes = [node(n) for n in "abc"]
    old = [running(ds, n, hash_="old") for n in "abc"]
    p = plan(ds, nodes, old, now=0.0)
    assert len(p.delete) == 1 and p.create == [] and "updatedNumberScheduled" not in p.status  # 0: omitted, as upstream
    # one node already without an available pod: nothing more goes
    p = plan(ds, nodes, [old[0], old[1]], now=0.0)
    assert p.create == ["c"] and p.delete == []
    # an unavailable old pod is replaced at once, whatever the budget
    sick = running(ds, "a", hash_="old", ready=False)
    p = plan(ds, nodes, [sick, old[1], old[2]], now=0.0)
    assert [d[0]["metadata"]["name"] for d in p.delete][0] == "p-a"
    ds["spec"]["updateStrategy"]["rollingUpdate"] = {"maxUnavailable": "100%", "maxSurge": 0}
    assert len(plan(ds, nodes, old, now=0.0).delete) == 3


def test_rolling_update_with_surge_starts_new_pod_before_deleting_old() -> None:
    ds = ds_manifest(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}})
    nodes = [node("a"), node("b")]
    old = [running(ds, n, hash_="old", name=f"old-{n}") for n in "ab"]
    p = plan(ds, nodes, old, now=0.0)
    assert p.create == ["a"] and p.delete == []
    new_a = running(ds, "a", name="new-a", ready=False)
    p = plan(ds, nodes, [*old, new_a], now=0.0)
    assert p.create == [] and p.delete == []  # the new pod is not available yet, and surge is spent
    new_a = running(ds, "a", name="new-a")
    p = plan(ds, nodes, [*old, new_a], now=0.0)
    assert [d[0]["metadata"]["name"] for d in p.delete] == ["old-a"]


def test_on_delete_replaces_nothing_until_the_user_deletes() -> None:
    ds = ds_manifest(updateStrategy={"type": "OnDelete"})
    nodes = [node("a"), node("b")]
    p = plan(ds, nodes, [running(ds, "a", hash_="old")], now=0.0)
    assert p.delete == [] and p.create == ["b"]
    assert "updatedNumberScheduled" not in p.status  # 0: omitted, as upstream


# --- bad input ----------------------------------------------------------------------------------


def test_validation_errors_name_the_field() -> None:
    def errors(obj: Obj) -> list[str]:
        return [str(e) for e in validate(obj)]

    ds = ds_manifest(pod={"restartPolicy": "Never"})
    assert any(e.startswith("spec.template.spec.restartPolicy: Unsupported value") for e in errors(ds))
    ds = ds_manifest(updateStrategy={"type": "Sometimes"})
    assert any(e.startswith("spec.updateStrategy.type: Unsupported value") for e in errors(ds))
    ds = ds_manifest(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}})
    assert errors(ds) == ["spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"]
    ds = ds_manifest(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "150%"}})
    assert any("must not be greater than 100%" in e for e in errors(ds))
    ds = ds_manifest()
    ds["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    assert any("does not match template" in e for e in errors(ds))


# --- the controller with the real scheduler ---------------------------------------------------------


class Readier:
    """Marks every bound pod Running and Ready (the node agents' part)."""

    def __init__(self, api: Registry) -> None:
        self.api = api
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="readier", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for pod in self.api.list("Pod")[0]:
                if pod["spec"].get("nodeName") and (pod.get("status") or {}).get("phase") != "Running":
                    new = copy.deepcopy(pod)
                    new["status"] = {
                        "phase": "Running",
                        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": rfc3339(0)}],
                    }
                    with contextlib.suppress(Conflict, NotFound):  # changed meanwhile: next round
                        self.api.update_status(new)
            self._stop.wait(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def add_node(api: Registry, name: str, labels: dict[str, str] | None = None) -> None:
    obj = api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}}})
    obj["status"] = {
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    api.update_status(obj)


@pytest.fixture
def running_controller(api: Registry, factory: InformerFactory) -> Iterator[DaemonSetController]:
    ctl = DaemonSetController(api, factory)
    scheduler = Scheduler(api, factory)
    gc = GarbageCollector(api, factory)
    with started(factory, ctl, scheduler, gc):
        readier = Readier(api)
        yield ctl
        readier.stop()


def daemon_pods(api: Registry) -> dict[str, str]:
    """node -> pod template hash, of the live daemon pods."""
    return {
        p["spec"].get("nodeName", ""): p["metadata"]["labels"][REVISION_HASH_LABEL]
        for p in api.list("Pod", "default", label_selector="app=agent")[0]
    }


def test_controller_follows_nodes_and_rolls_an_update(api: Registry, running_controller: DaemonSetController) -> None:
    add_node(api, "n1")
    add_node(api, "n2")
    api.patch("Node", "n2", "", {"spec": {"unschedulable": True}})  # cordoned: daemon pods still go there
    spec = ds_manifest()["spec"]
    api.create({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "default"}, "spec": spec})

    def status() -> dict[str, Any]:
        return api.get("DaemonSet", "agent", "default").get("status") or {}

    wait_for(lambda: status().get("numberReady") == 2, what="2 ready daemon pods", detail=status)
    assert set(daemon_pods(api)) == {"n1", "n2"}
    add_node(api, "n3")
    wait_for(lambda: set(daemon_pods(api)) == {"n1", "n2", "n3"}, what="a pod on the new node", detail=lambda: daemon_pods(api))
    api.delete("Node", "n3")
    wait_for(lambda: set(daemon_pods(api)) == {"n1", "n2"}, what="the pod of the removed node gone")
    # a new template rolls out node by node
    api.patch("DaemonSet", "agent", "default", {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "busybox:2"}]}}}})
    new_hash = revision_hash(api.get("DaemonSet", "agent", "default"))
    wait_for(
        lambda: daemon_pods(api) == {"n1": new_hash, "n2": new_hash} and status().get("updatedNumberScheduled") == 2
        and status().get("numberAvailable") == 2,
        timeout=20,
        what="the update rolled out",
        detail=lambda: (daemon_pods(api), status()),
    )
    assert status()["observedGeneration"] == api.get("DaemonSet", "agent", "default")["metadata"]["generation"]
    # deleting the DaemonSet takes its pods with it (the garbage collector follows its owner)
    api.delete("DaemonSet", "agent", "default")
    wait_for(lambda: daemon_pods(api) == {}, what="the daemon pods garbage collected")


def test_surge_starts_a_replacement_beside_an_unavailable_old_pod_at_once() -> None:
    ds = ds_manifest(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}})
    nodes = [node("a"), node("b")]
    old = [running(ds, "a", hash_="old", name="old-a", ready=False), running(ds, "b", hash_="old", name="old-b")]
    p = plan(ds, nodes, old, now=0.0)
    assert p.create == ["a", "b"] and p.delete == []  # a: outside the surge budget; b: within it


def test_a_node_that_keeps_its_pod_under_a_new_taint_gets_no_update() -> None:
    ds = ds_manifest(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}})
    tainted = node("a", taints=[{"key": "gpu", "effect": "NoSchedule"}])
    p = plan(ds, [tainted], [running(ds, "a", hash_="old")], now=0.0)
    assert p.create == [] and p.delete == [] and p.status["numberMisscheduled"] == 1


def test_history_is_one_revision_per_template_pruned_to_the_limit(api: Registry, running_controller: DaemonSetController) -> None:
    add_node(api, "n1")
    spec = ds_manifest()["spec"]
    spec["revisionHistoryLimit"] = 1
    api.create({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "default"}, "spec": spec})

    def revisions() -> dict[int, str]:
        return {r["revision"]: r["metadata"]["name"] for r in api.list("ControllerRevision", "default")[0]}

    for image in ("busybox:2", "busybox:3", "busybox:4"):
        api.patch("DaemonSet", "agent", "default", {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": image}]}}}})
        current = f"agent-{revision_hash(api.get('DaemonSet', 'agent', 'default'))}"
        wait_for(lambda current=current: set(daemon_pods(api).values()) == {current.removeprefix("agent-")}, what=f"{image} rolled out")
    # the current revision and one old one (the limit); older ones no pod runs are gone
    wait_for(lambda: len(revisions()) == 2, what="history pruned to the limit", detail=revisions)
    # (the first template may never get one: the controller can see the DaemonSet first patched)
    top = max(revisions())
    assert sorted(revisions()) == [top - 1, top] and revisions()[top] == current
    revision = api.list("ControllerRevision", "default")[0][0]
    assert revision["data"]["spec"]["template"]["$patch"] == "replace"
    assert revision["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    assert revision["metadata"]["labels"]["app"] == "agent"
