"""ReplicationController / ReplicaSet controller: exact counts, adoption, release, expectations,
deletion order and status."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from nbk_workload_helpers import FakeKubelet, active_pods, rc_manifest, started, wait_for

from nbkube.api.meta import Obj, controller_of
from nbkube.client.informer import InformerFactory
from nbkube.clock import FakeClock, rfc3339
from nbkube.controlplane.controllers.replication import (
    ReplicaSetController,
    ReplicationManager,
    claim_pods,
    compute_status,
    deletion_order,
    desired_replicas,
    pods_to_delete,
    scale,
    slow_start_batch,
)
from nbkube.errors import Forbidden, NbkubeError, StoreUnavailable
from nbkube.registry.registry import Registry


@pytest.fixture
def rcm(api: Registry, factory: InformerFactory) -> Iterator[ReplicationManager]:
    ctl = ReplicationManager(api, factory)
    with started(factory, ctl):
        yield ctl


def owned_count(api: Registry, name: str) -> int:
    return sum(1 for p in active_pods(api) if (controller_of(p) or {}).get("name") == name)


def _pod(name: str, *, node: str = "", phase: str = "", ready: bool = False, created: float = 0.0) -> Obj:
    status: dict[str, object] = {}
    if phase:
        status["phase"] = phase
    if ready:
        status["conditions"] = [{"type": "Ready", "status": "True", "lastTransitionTime": rfc3339(created)}]
    return {
        "metadata": {"name": name, "labels": {"app": "x"}, "creationTimestamp": rfc3339(created)},
        "spec": {"nodeName": node} if node else {},
        "status": status,
    }


# --- pure logic -------------------------------------------------------------------------------


def test_deletion_order_prefers_unscheduled_pending_notready_then_newest() -> None:
    ready_old = _pod("ready-old", node="n", phase="Running", ready=True, created=100)
    ready_new = _pod("ready-new", node="n", phase="Running", ready=True, created=200)
    not_ready = _pod("not-ready", node="n", phase="Running", created=50)
    pending = _pod("pending", node="n", phase="Pending", created=10)
    unscheduled = _pod("unscheduled", created=5)
    pods = [ready_old, ready_new, not_ready, pending, unscheduled]
    order = [p["metadata"]["name"] for p in sorted(pods, key=deletion_order)]
    assert order == ["unscheduled", "pending", "not-ready", "ready-new", "ready-old"]
    assert [p["metadata"]["name"] for p in pods_to_delete(pods, 2)] == ["unscheduled", "pending"]


def test_claim_adopts_orphans_and_releases_mismatches() -> None:
    owner = {"kind": "ReplicationController", "metadata": {"uid": "u1"}, "spec": {"selector": {"app": "x"}}}
    mine = _pod("mine")
    mine["metadata"]["ownerReferences"] = [{"uid": "u1", "controller": True}]
    moved = _pod("moved")
    moved["metadata"]["labels"] = {"app": "y"}
    moved["metadata"]["ownerReferences"] = [{"uid": "u1", "controller": True}]
    orphan = _pod("orphan")
    foreign = _pod("foreign")
    foreign["metadata"]["ownerReferences"] = [{"uid": "u2", "controller": True}]
    finished = _pod("finished", phase="Succeeded")
    c = claim_pods(owner, [mine, moved, orphan, foreign, finished])
    assert [p["metadata"]["name"] for p in c.owned] == ["mine"]
    assert [p["metadata"]["name"] for p in c.adopt] == ["orphan"]
    assert [p["metadata"]["name"] for p in c.release] == ["moved"]


def test_status_counts_available_after_min_ready_seconds() -> None:
    owner = {
        "metadata": {"generation": 4},
        "spec": {"minReadySeconds": 10, "template": {"metadata": {"labels": {"app": "x"}}}},
    }
    pods = [
        _pod("a", node="n", phase="Running", ready=True, created=100),
        _pod("b", node="n", phase="Running", ready=True, created=195),
        _pod("c", node="n", phase="Running"),
    ]
    st = compute_status(owner, pods, now=200.0)
    assert st == {
        "replicas": 3,
        "fullyLabeledReplicas": 3,
        "readyReplicas": 2,
        "availableReplicas": 1,
        "observedGeneration": 4,
    }


# --- against a registry -----------------------------------------------------------------------


def test_deleting_a_pod_brings_a_replacement(
    api: Registry, rcm: ReplicationManager, kubelet: FakeKubelet
) -> None:
    api.create(rc_manifest(replicas=3))
    wait_for(lambda: owned_count(api, "nginx") == 3, what="3 pods")
    victim = active_pods(api)[0]
    api.delete("Pod", victim["metadata"]["name"], "default")
    wait_for(
        lambda: (
            owned_count(api, "nginx") == 3
            and victim["metadata"]["name"] not in {p["metadata"]["name"] for p in active_pods(api)}
        ),
        what="replacement",
    )
    pods = active_pods(api)
    assert all(p["metadata"]["generateName"] == "nginx-" for p in pods)
    ref = controller_of(pods[0])
    assert ref is not None and ref["kind"] == "ReplicationController" and ref["blockOwnerDeletion"] is True
    wait_for(
        lambda: (
            (api.get("ReplicationController", "nginx", "default").get("status") or {}).get("readyReplicas")
            == 3
        ),
        what="ready status",
    )
    st = api.get("ReplicationController", "nginx", "default")["status"]
    assert st["replicas"] == 3 and st["availableReplicas"] == 3 and st["observedGeneration"] == 1
    events, _ = api.list("Event", "default")
    reasons = [e["reason"] for e in events if e["involvedObject"]["name"] == "nginx"]
    assert reasons.count("SuccessfulCreate") == 4


def test_scale_to_ten_and_back_to_two_converges_exactly(
    api: Registry, rcm: ReplicationManager, kubelet: FakeKubelet
) -> None:
    api.create(rc_manifest(replicas=3))
    wait_for(lambda: owned_count(api, "nginx") == 3)
    scale(api, "ReplicationController", "nginx", "default", 10)
    wait_for(lambda: owned_count(api, "nginx") == 10, what="10 pods")
    scale(api, "ReplicationController", "nginx", "default", 2)
    wait_for(lambda: owned_count(api, "nginx") == 2, what="2 pods")
    wait_for(
        lambda: (
            api.get("ReplicationController", "nginx", "default").get("status", {}).get("readyReplicas") == 2
        )
    )
    # quiet: the controller does not keep churning
    rcm.queue.add("default/nginx")
    wait_for(lambda: len(rcm.queue) == 0)
    assert owned_count(api, "nginx") == 2
    st = api.get("ReplicationController", "nginx", "default")["status"]
    assert st["replicas"] == 2 and st["observedGeneration"] == 3


def test_adoption_and_release(api: Registry, rcm: ReplicationManager) -> None:
    orphan = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "stray", "namespace": "default", "labels": {"app": "nginx"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }
    api.create(orphan)
    rc = api.create(rc_manifest(replicas=2))
    wait_for(lambda: owned_count(api, "nginx") == 2)
    stray = api.get("Pod", "stray", "default")
    assert (controller_of(stray) or {}).get("uid") == rc["metadata"]["uid"], "orphan adopted"
    assert len(active_pods(api)) == 2, "adopted pod counts towards replicas"
    # relabel it: released, and a replacement is made
    api.patch("Pod", "stray", "default", {"metadata": {"labels": {"app": "debug"}}})
    wait_for(lambda: controller_of(api.get("Pod", "stray", "default")) is None, what="release")
    wait_for(lambda: owned_count(api, "nginx") == 2)
    assert len(active_pods(api)) == 3


def test_expectations_prevent_over_creation(api: Registry, factory: InformerFactory) -> None:
    ctl = ReplicationManager(api, factory, clock=FakeClock())
    # only the RC informer runs: the controller never sees its own pod creates
    ctl.owners.start()
    try:
        assert ctl.owners.wait_synced(5)
        api.create(rc_manifest(replicas=4))
        wait_for(lambda: ctl.owners.get("default/nginx") is not None)
        ctl.reconcile("default/nginx")
        ctl.reconcile("default/nginx")
        assert len(active_pods(api)) == 4
        assert ctl.expectations.pending("default/nginx") == (4, 0)
        # once the pod informer reports the creates, expectations are met and nothing more is made
        ctl.pods.start()
        assert ctl.pods.wait_synced(5)
        wait_for(lambda: ctl.expectations.satisfied("default/nginx"))
        ctl.reconcile("default/nginx")
        assert len(active_pods(api)) == 4
    finally:
        ctl.stop()
        ctl.pods.stop()
        ctl.owners.stop()


def test_replicaset_with_match_expressions(
    api: Registry, rcm: ReplicationManager, factory: InformerFactory
) -> None:
    rsc = ReplicaSetController(api, factory)
    rsc.start()
    try:
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": 3,
                "selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]},
                "template": {
                    "metadata": {"labels": {"tier": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                },
            },
        }
        api.create(rs)
        wait_for(lambda: owned_count(api, "web") == 3)
        wait_for(lambda: api.get("ReplicaSet", "web", "default").get("status", {}).get("replicas") == 3)
        assert owned_count(api, "nginx") == 0, "the RC controller leaves ReplicaSet pods alone"
    finally:
        rsc.stop()


def test_terminal_pods_do_not_count(api: Registry, rcm: ReplicationManager) -> None:
    api.create(rc_manifest(replicas=2))
    wait_for(lambda: owned_count(api, "nginx") == 2)
    pod = copy.deepcopy(active_pods(api)[0])
    pod["status"] = {"phase": "Failed"}
    api.update_status(pod)
    wait_for(lambda: owned_count(api, "nginx") == 2 and len(api.list("Pod", "default")[0]) == 3)


# --- bounded creation: slow start, and a status write that keeps failing ------------------------


class _StatusWritesFail:
    """The registry, except that every status write fails (the store refuses it)."""

    def __init__(self, api: Registry) -> None:
        self._api = api
        self.status_failures = 0

    def update_status(self, obj: Obj) -> Obj:
        self.status_failures += 1
        raise StoreUnavailable("status writes are failing in this test")

    def __getattr__(self, name: str) -> object:
        return getattr(self._api, name)


def test_failing_status_writes_never_multiply_pods(api: Registry, factory: InformerFactory) -> None:
    wrapped = _StatusWritesFail(api)
    ctl = ReplicationManager(wrapped, factory, clock=FakeClock())  # type: ignore[arg-type]
    factory.start_all()
    try:
        assert factory.wait_all_synced(5)
        api.create(rc_manifest(replicas=5))
        wait_for(lambda: ctl.owners.get("default/nginx") is not None)
        for _ in range(30):  # each failed status write is a retry of the whole reconcile
            with pytest.raises(StoreUnavailable):
                ctl.reconcile("default/nginx")
            assert len(active_pods(api)) <= 5
            wait_for(lambda: len(ctl.pods.list()) == len(active_pods(api)), what="pod informer")
        assert len(active_pods(api)) == 5
        assert wrapped.status_failures == 30
    finally:
        ctl.stop()
        factory.stop_all()


class _CreatesFailAfter:
    """The registry, except that pod creates fail after the first `ok` of them."""

    def __init__(self, api: Registry, ok: int) -> None:
        self._api = api
        self.ok = ok
        self.attempts = 0

    def create(self, obj: Obj) -> Obj:
        if obj.get("kind") == "Pod":
            self.attempts += 1
            if self.attempts > self.ok:
                raise Forbidden("exceeded quota: pods")
        return self._api.create(obj)

    def create_many(self, objs: list[Obj]) -> list[Obj | NbkubeError]:
        out: list[Obj | NbkubeError] = []
        for obj in objs:
            try:
                out.append(self.create(obj))
            except NbkubeError as err:
                out.append(err)
        return out

    def __getattr__(self, name: str) -> object:
        return getattr(self._api, name)


def _reconcile_failing(
    api: Registry, factory: InformerFactory, wrapped: _CreatesFailAfter, error: type
) -> ReplicationManager:
    """An RC of 100 replicas reconciled once through `wrapped`, which raises `error`; the manager."""
    ctl = ReplicationManager(wrapped, factory, clock=FakeClock())  # type: ignore[arg-type]
    ctl.owners.start()
    assert ctl.owners.wait_synced(5)
    api.create(rc_manifest(replicas=100))
    wait_for(lambda: ctl.owners.get("default/nginx") is not None)
    with pytest.raises(error):
        ctl.reconcile("default/nginx")
    return ctl


def test_a_failing_create_stops_the_batch_and_releases_expectations(
    api: Registry, factory: InformerFactory
) -> None:
    wrapped = _CreatesFailAfter(api, ok=3)
    ctl = _reconcile_failing(api, factory, wrapped, Forbidden)
    try:
        # batches of 1, 2 and 4 (sent at once, as upstream's): the third fails, none after it
        assert wrapped.attempts == 7, "one failed batch, none after it"
        assert len(active_pods(api)) == 3
        assert ctl.expectations.pending("default/nginx") == (3, 0)
        events, _ = api.list("Event", "default")
        assert [e["reason"] for e in events].count("FailedCreate") == 1
    finally:
        ctl.stop()
        ctl.owners.stop()


class _BatchesRefusedAfter(_CreatesFailAfter):
    """create_many raises (as when the store is unavailable) once `ok` pods were made."""

    def create_many(self, objs: list[Obj]) -> list[Obj | NbkubeError]:
        if self.attempts >= self.ok:
            raise StoreUnavailable("etcd://127.0.0.1:1: connection refused")
        return super().create_many(objs)


def test_a_batch_refused_whole_releases_its_expectations(api: Registry, factory: InformerFactory) -> None:
    ctl = _reconcile_failing(api, factory, _BatchesRefusedAfter(api, ok=3), StoreUnavailable)
    try:
        # batches of 1 and 2 made, the third refused whole: only the 3 made are still expected,
        # so the next reconcile after they are observed is not held back by creates never sent
        assert len(active_pods(api)) == 3
        assert ctl.expectations.pending("default/nginx") == (3, 0)
    finally:
        ctl.stop()
        ctl.owners.stop()


def test_slow_start_batches_double() -> None:
    calls: list[int] = []
    assert slow_start_batch(10, 1, lambda: calls.append(len(calls))) is None
    assert len(calls) == 10
    failing = iter(range(100))

    def call() -> None:
        if next(failing) == 5:
            raise Forbidden("no")

    error = slow_start_batch(100, 1, call)
    assert isinstance(error, Forbidden)
    assert next(failing) == 6, "stopped at the first failure"


@pytest.mark.parametrize("replicas", [1.18e21, 2**31, -1, True, "3"])
def test_replicas_that_are_not_an_int32_count_are_not_acted_on(replicas: object) -> None:
    assert desired_replicas({"spec": {"replicas": replicas}}) is None


def test_desired_replicas_defaults_to_one() -> None:
    assert desired_replicas({"spec": {}}) == 1
    assert desired_replicas({"spec": {"replicas": 0}}) == 0


def test_slow_start_batches_double_and_stop_after_a_failed_batch() -> None:
    from nbkube.controlplane.controllers.replication import slow_start_batches
    from nbkube.errors import Forbidden

    sizes: list[int] = []
    assert slow_start_batches(10, 1, lambda n: sizes.append(n)) is None
    assert sizes == [1, 2, 4, 3]
    sizes.clear()
    err = Forbidden("quota")
    assert slow_start_batches(10, 1, lambda n: sizes.append(n) or (err if n == 2 else None)) is err
    assert sizes == [1, 2]
