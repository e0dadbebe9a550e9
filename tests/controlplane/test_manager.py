"""ControlPlane: controllers discovered by module, leader election between two control planes, profiles."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "registry"))

from nbk_teststore import leftover_threads, make_store  # noqa: E402

from nbkube.controlplane.controllers.nodelifecycle import NodeLifecycleController  # noqa: E402
from nbkube.controlplane.manager import ControlPlane, controller_classes  # noqa: E402
from nbkube.controlplane.profiles import PROFILES, get_profile  # noqa: E402
from nbkube.errors import BadRequest  # noqa: E402
from nbkube.node.agent import NodeAgent  # noqa: E402
from nbkube.node.runtime.sim import SimRuntime  # noqa: E402
from nbkube.registry.registry import Registry  # noqa: E402


@pytest.fixture
def no_leftover_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    assert leftover_threads(before, grace=5.0) == []


@pytest.fixture
def api(no_leftover_threads: None) -> Iterator[Registry]:
    reg = Registry(make_store())
    yield reg
    reg.close()
    reg.store.close()


def wait_for(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


# -- profiles --------------------------------------------------------------------------------------


def test_named_profiles_match_the_issue() -> None:
    k8s, fast = PROFILES["kubernetes"], PROFILES["fast"]
    assert (k8s.heartbeat_interval, k8s.grace_period, k8s.toleration_seconds) == (10, 40, 300)
    assert (fast.heartbeat_interval, fast.grace_period, fast.toleration_seconds) == (1, 2, 0)
    assert (k8s.heartbeat, k8s.grace, k8s.eviction) == (10, 40, 300)


def test_get_profile_overrides_and_errors() -> None:
    p = get_profile("kubernetes", toleration_seconds=30, grace=20)
    assert (p.toleration_seconds, p.grace_period, p.heartbeat_interval) == (30, 20, 10)
    assert get_profile(p) is p
    with pytest.raises(BadRequest, match="unknown profile 'slow'.*fast, kubernetes"):
        get_profile("slow")
    with pytest.raises(BadRequest, match="unknown profile field 'beat'"):
        get_profile("fast", beat=1)
    with pytest.raises(BadRequest, match="grace_period must be a number >= 0"):
        get_profile("fast", grace_period=-1)


# -- controller discovery --------------------------------------------------------------------------


def test_a_controller_module_that_cannot_be_imported_fails_loudly() -> None:
    assert controller_classes(["nbkube.controlplane.controllers.nodelifecycle"]) == [NodeLifecycleController]
    with pytest.raises(ModuleNotFoundError, match="nbkube.controlplane.controllers.nope"):
        controller_classes(["nbkube.controlplane.controllers.nodelifecycle", "nbkube.controlplane.controllers.nope"])


def test_leader_elect_false_runs_components_at_once(api: Registry) -> None:
    cp = ControlPlane(
        api, profile="fast", leader_elect=False, controllers=["nbkube.controlplane.controllers.nodelifecycle"]
    )
    cp.start()
    try:
        assert cp.is_leader and "nodelifecycle" in cp.components
    finally:
        cp.stop()
    assert not cp.is_leader and cp.components == {}


# -- two control planes on one store ---------------------------------------------------------------


def _rc(replicas: int) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"app": "web"},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }


def _pods(api: Registry) -> list[dict]:
    return api.list("Pod", "default", label_selector="app=web")[0]


def _running(api: Registry) -> int:
    return sum(1 for p in _pods(api) if (p.get("status") or {}).get("phase") == "Running")


@pytest.mark.slow
def test_two_control_planes_only_one_acts_and_the_standby_takes_over(api: Registry) -> None:
    assert any(c.__name__ == "ReplicationManager" for c in controller_classes())
    profile = get_profile("fast")
    agents = [NodeAgent(api, f"node-{i}", SimRuntime(), profile=profile) for i in (1, 2)]
    a = ControlPlane(api, profile=profile, identity="cp-a")
    b = ControlPlane(api, profile=profile, identity="cp-b")
    try:
        for agent in agents:
            agent.start()
        a.start()
        assert a.wait_leading(10)
        b.start()
        api.create(_rc(5))
        wait_for(lambda: _running(api) == 5, what="5 running pods")
        # a standby never acts: over a few lease renewals there stay exactly 5 pods and one leader
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert len(_pods(api)) == 5
            assert not b.is_leader
            time.sleep(0.05)
        lease = api.get("Lease", "nbkube-controller-manager", "kube-system")
        assert lease["spec"]["holderIdentity"] == "cp-a"

        a.stop()  # releases the lease: b takes over at its next try
        assert b.wait_leading(10)
        rc = api.get("ReplicationController", "web", "default")
        api.update({**rc, "spec": {**rc["spec"], "replicas": 7}})
        wait_for(lambda: _running(api) == 7, what="7 running pods under the new leader")
        time.sleep(0.5)
        assert len(_pods(api)) == 7
    finally:
        a.stop()
        b.stop()
        for agent in agents:
            agent.stop()


@pytest.mark.slow
def test_crashed_leader_is_replaced_after_its_lease_lapses(api: Registry) -> None:
    profile = get_profile("fast")  # leader lease 3 s
    a = ControlPlane(api, profile=profile, identity="cp-a", controllers=[], scheduler=False)
    b = ControlPlane(api, profile=profile, identity="cp-b", controllers=[], scheduler=False)
    try:
        a.start()
        assert a.wait_leading(10)
        b.start()
        crashed_at = time.monotonic()
        a.crash()  # the lease is not released
        assert b.wait_leading(10)
        waited = time.monotonic() - crashed_at
        assert waited >= profile.leader_lease_duration - profile.leader_renew_interval - 0.5
        assert (
            api.get("Lease", "nbkube-controller-manager", "kube-system")["spec"]["holderIdentity"] == "cp-b"
        )
    finally:
        a.stop()
        b.stop()
