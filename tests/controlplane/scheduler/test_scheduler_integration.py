"""The Scheduler against a real Registry (sqlite://:memory:) and informers.

A FakeClock drives the periodic retry, so a parked pod can only be bound here because the cluster
changed (a node added, a pod deleted), which is what these tests check."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from nbk_sched_objects import node, pod

from nbkube.client.informer import InformerFactory
from nbkube.clock import FakeClock
from nbkube.controlplane.scheduler import Scheduler
from nbkube.registry.registry import Registry


def wait_for(pred: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll the store until `pred` holds (the scheduler works on its own threads)."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.01)


def add_node(api: Registry, obj: dict[str, Any]) -> None:
    status = obj.pop("status")
    created = api.create(obj)
    api.update_status({**created, "status": status})


def known_ready(sched: Scheduler, *names: str) -> bool:
    """The scheduler's informer has seen these nodes Ready (the Node create and status are two writes)."""
    nodes = sched.snapshot.nodes
    return all(n in nodes and nodes[n].ready for n in names)


def node_of(api: Registry, name: str) -> str:
    return str(api.get("Pod", name, "default")["spec"].get("nodeName") or "")


def condition(api: Registry, name: str) -> dict[str, Any] | None:
    for c in (api.get("Pod", name, "default").get("status") or {}).get("conditions") or ():
        if c.get("type") == "PodScheduled":
            return dict(c)
    return None


def events(api: Registry, name: str, reason: str) -> list[dict[str, Any]]:
    items, _ = api.list("Event", "default")
    return [e for e in items if e["involvedObject"]["name"] == name and e["reason"] == reason]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=[True, False], ids=["async-bind", "inline-bind"])
def scheduler(api: Registry, clock: FakeClock, request: pytest.FixtureRequest) -> Iterator[Scheduler]:
    factory = InformerFactory(api)
    sched = Scheduler(api, factory, clock=clock, async_bind=request.param)
    factory.start_all()
    sched.start()
    yield sched
    sched.stop()
    factory.stop_all()


def test_pods_are_bound_spread_and_recorded(api: Registry, scheduler: Scheduler) -> None:
    for n in ("n1", "n2", "n3"):
        add_node(api, node(n))
    assert wait_for(lambda: known_ready(scheduler, "n1", "n2", "n3"))
    for i in range(5):
        api.create(pod(f"web-{i}", cpu="100m", owner_uid="rc-1"))
    assert wait_for(lambda: all(node_of(api, f"web-{i}") for i in range(5)))
    spread = Counter(node_of(api, f"web-{i}") for i in range(5))
    assert sorted(spread.values()) == [1, 2, 2]
    ev = wait_for(lambda: events(api, "web-0", "Scheduled"))
    assert ev and ev[0]["message"] == f"Successfully assigned default/web-0 to {node_of(api, 'web-0')}"
    assert ev[0]["source"]["component"] == "default-scheduler"
    assert scheduler.stats.scheduled == 5


def test_unschedulable_pod_gets_condition_and_event_then_binds_when_a_node_arrives(
    api: Registry, scheduler: Scheduler
) -> None:
    add_node(api, node("small-1", cpu="1"))
    add_node(api, node("small-2", cpu="1"))
    add_node(api, node("cordoned", cpu="8", unschedulable=True))
    assert wait_for(lambda: known_ready(scheduler, "small-1", "small-2", "cordoned"))
    api.create(pod("big", cpu="2"))
    msg = "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) were unschedulable."
    cond = wait_for(lambda: condition(api, "big"))
    assert cond is not None
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", msg)
    ev = wait_for(lambda: events(api, "big", "FailedScheduling"))
    assert ev and ev[0]["message"] == msg and ev[0]["type"] == "Warning"
    assert node_of(api, "big") == ""
    rv = api.get("Pod", "big", "default")["metadata"]["resourceVersion"]
    add_node(api, node("large", cpu="4"))
    assert wait_for(lambda: node_of(api, "big")) == "large"
    assert api.get("Pod", "big", "default")["metadata"]["resourceVersion"] != rv
    assert wait_for(lambda: (condition(api, "big") or {}).get("status") == "True")


def test_deleting_a_pod_frees_room_for_a_parked_one(api: Registry, scheduler: Scheduler) -> None:
    add_node(api, node("n1", cpu="1"))
    assert wait_for(lambda: known_ready(scheduler, "n1"))
    api.create(pod("first", cpu="800m"))
    assert wait_for(lambda: node_of(api, "first")) == "n1"
    api.create(pod("second", cpu="800m"))
    cond = wait_for(lambda: condition(api, "second"))
    assert cond is not None and cond["message"] == "0/1 nodes are available: 1 Insufficient cpu."
    api.delete("Pod", "first", "default")
    assert wait_for(lambda: node_of(api, "second")) == "n1"


def test_periodic_retry_uses_the_clock(api: Registry, scheduler: Scheduler, clock: FakeClock) -> None:
    add_node(api, node("n1", cpu="1"))
    assert wait_for(lambda: known_ready(scheduler, "n1"))
    api.create(pod("p", cpu="2"))
    assert wait_for(lambda: events(api, "p", "FailedScheduling"))
    assert wait_for(lambda: condition(api, "p"))
    rv = api.get("Pod", "p", "default")["metadata"]["resourceVersion"]
    before = scheduler.stats.unschedulable
    clock.advance(6)  # past the first 5 s backoff
    assert wait_for(lambda: scheduler.stats.unschedulable > before)
    # the same message is not written again (no status churn), but each attempt is an event
    assert wait_for(lambda: len(events(api, "p", "FailedScheduling")) >= 2)
    assert api.get("Pod", "p", "default")["metadata"]["resourceVersion"] == rv


def test_cordoned_node_takes_no_new_pods(api: Registry, scheduler: Scheduler) -> None:
    add_node(api, node("a"))
    add_node(api, node("b"))
    b = api.get("Node", "b")
    b["spec"]["unschedulable"] = True
    api.update(b)
    assert wait_for(
        lambda: scheduler.snapshot.nodes.get("b") is not None and scheduler.snapshot.nodes["b"].unschedulable
    )
    for i in range(4):
        api.create(pod(f"p{i}"))
    assert wait_for(lambda: all(node_of(api, f"p{i}") for i in range(4)))
    assert {node_of(api, f"p{i}") for i in range(4)} == {"a"}


def test_other_schedulers_pods_are_left_alone(api: Registry, scheduler: Scheduler) -> None:
    add_node(api, node("n1"))
    api.create(pod("mine"))
    api.create(pod("theirs", scheduler_name="other-scheduler"))
    assert wait_for(lambda: node_of(api, "mine")) == "n1"
    scheduler.wait_idle()
    assert node_of(api, "theirs") == ""
    assert condition(api, "theirs") is None


def test_bind_rereads_on_conflict_and_respects_other_binders(api: Registry, clock: FakeClock) -> None:
    # No worker thread here: call the bind step directly with a stale object.
    factory = InformerFactory(api)
    sched = Scheduler(api, factory, clock=clock)
    add_node(api, node("n1"))
    stale = api.create(pod("p"))
    fresh = api.get("Pod", "p", "default")
    fresh["metadata"]["labels"]["extra"] = "yes"
    api.update(fresh)  # bumps the resourceVersion under the scheduler's feet
    bound = sched._bind(stale, "n1")
    assert bound is not None and bound["spec"]["nodeName"] == "n1"
    assert api.get("Pod", "p", "default")["metadata"]["labels"]["extra"] == "yes"
    assert sched.stats.conflicts == 1
    # someone else bound it first: we do not overwrite
    other = api.create(pod("q"))
    taken = api.get("Pod", "q", "default")
    taken["spec"]["nodeName"] = "n1"
    api.update(taken)
    assert sched._bind(other, "n2") is None
    assert node_of(api, "q") == "n1"
    sched.stop()


def test_pods_bound_before_start_are_accounted(api: Registry, clock: FakeClock) -> None:
    add_node(api, node("n1", cpu="1"))
    add_node(api, node("n2", cpu="1"))
    api.create(pod("old", cpu="900m", node_name="n1"))
    api.create(pod("new", cpu="500m"))
    factory = InformerFactory(api)
    sched = Scheduler(api, factory, clock=clock)
    factory.start_all()
    sched.start()
    try:
        assert wait_for(lambda: node_of(api, "new")) == "n2"
    finally:
        sched.stop()
        factory.stop_all()


def test_stop_and_start_again_picks_up_pending_pods(api: Registry, clock: FakeClock) -> None:
    factory = InformerFactory(api)
    sched = Scheduler(api, factory, clock=clock)
    factory.start_all()
    try:
        add_node(api, node("n1"))
        sched.start()
        assert wait_for(lambda: known_ready(sched, "n1"))
        api.create(pod("before"))
        assert wait_for(lambda: node_of(api, "before")) == "n1"
        sched.stop()
        api.create(pod("while-stopped"))
        assert wait_for(lambda: sched.pods.get("default/while-stopped") is not None)
        assert node_of(api, "while-stopped") == ""
        sched.start()
        assert wait_for(lambda: node_of(api, "while-stopped")) == "n1"
    finally:
        sched.stop()
        factory.stop_all()


def test_a_bind_batch_writes_each_bind_with_its_own_cas(api: Registry, clock: FakeClock) -> None:
    # No worker thread here: hand the binder's batch step pods directly, one of them stale.
    factory = InformerFactory(api)
    sched = Scheduler(api, factory, clock=clock)
    add_node(api, node("n1"))
    calls: list[int] = []
    real = api.update_many

    def spy(objs: Any, **kw: Any) -> Any:
        calls.append(len(objs))
        return real(objs, **kw)

    api.update_many = spy  # type: ignore[method-assign]
    a, stale, gone = api.create(pod("a")), api.create(pod("b")), api.create(pod("c"))
    fresh = api.get("Pod", "b", "default")
    fresh["metadata"]["labels"]["extra"] = "yes"
    api.update(fresh)  # b moved on under the scheduler's feet
    api.delete("Pod", "c", "default")
    sched._bind_batch([("default/a", a, "n1"), ("default/b", stale, "n1"), ("default/c", gone, "n1")])
    assert calls == [3]
    assert node_of(api, "a") == "n1"
    assert node_of(api, "b") == "n1"  # its conflict took the one-pod path: re-read and bound
    assert api.get("Pod", "b", "default")["metadata"]["labels"]["extra"] == "yes"
    assert sched.stats.scheduled == 2 and sched.stats.conflicts >= 1
    sched.stop()
