"""The node agent: registration, lease renewal, pods to Ready with status and events, faults."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "registry"))

from nbk_teststore import leftover_threads, make_store  # noqa: E402

from nbkube.clock import FakeClock, parse_rfc3339  # noqa: E402
from nbkube.errors import BadRequest, Conflict, NotFound  # noqa: E402
from nbkube.node.agent import FAULT_ANNOTATION, NodeAgent  # noqa: E402
from nbkube.node.runtime.sim import LatencyModel, SimRuntime  # noqa: E402
from nbkube.registry.registry import Registry  # noqa: E402


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    assert leftover_threads(before) == []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api(clock: FakeClock, no_leftover_threads: None) -> Iterator[Registry]:
    reg = Registry(make_store(), clock=clock)
    yield reg
    reg.close()
    reg.store.close()


@pytest.fixture
def agents(api: Registry, clock: FakeClock) -> Iterator[Callable[..., NodeAgent]]:
    made: list[NodeAgent] = []

    def make(name: str = "node-1", **kw: object) -> NodeAgent:
        rt = SimRuntime(clock=clock, latency=LatencyModel(sandbox=0.1, start=0.2))
        a = NodeAgent(api, name, rt, heartbeat=10.0, clock=clock, **kw)  # type: ignore[arg-type]
        a.start()
        made.append(a)
        return a

    yield make
    for a in made:
        a.stop()


def wait_for(cond: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def wait_as_time_passes(clock: FakeClock, cond: Callable[[], object], what: str) -> object:
    """wait_for, moving the fake clock on 5 ms at each look. A status write can meet an informer
    that has not yet seen the pod's previous write: it conflicts and is retried after a back-off,
    and that back-off is time on this clock; time that never passes would hold the retry forever."""

    def step() -> object:
        clock.advance(0.005)
        return cond()

    return wait_for(step, what=what)


def bound_pod(name: str, node: str = "node-1", **meta: object) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", **meta},
        "spec": {"nodeName": node, "containers": [{"name": "web", "image": "nginx"}]},
    }


def pod_if(api_or_name: object, pred: Callable[[dict], object]) -> dict | None:
    """The pod if `pred(pod)` holds (for wait_for); `api_or_name` is the pod's name."""
    pod = _API[0].get("Pod", str(api_or_name))
    return pod if pred(pod) else None


_API: list[Registry] = []


@pytest.fixture(autouse=True)
def _remember_api(api: Registry) -> Iterator[None]:
    _API[:] = [api]
    yield
    _API.clear()


def ready(pod: dict) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def events(api: Registry, name: str) -> list[tuple[str, float]]:
    items, _ = api.list("Event")
    out = [(e["reason"], parse_rfc3339(e["eventTime"])) for e in items if e["involvedObject"]["name"] == name]
    return sorted(out, key=lambda x: x[1])


def test_registers_node_and_lease(api: Registry, clock: FakeClock, agents: Callable[..., NodeAgent]) -> None:
    agents("node-3", capacity={"cpu": "2"})
    node = api.get("Node", "node-3")
    assert node["spec"]["podCIDR"] == "10.244.3.0/24"
    st = node["status"]
    assert st["capacity"] == {"cpu": "2", "memory": "8Gi", "pods": "110"} == st["allocatable"]
    assert {"type": "InternalIP", "address": "172.18.3.2"} in st["addresses"]
    ready_cond = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready_cond["status"] == "True" and parse_rfc3339(ready_cond["lastHeartbeatTime"]) == clock.now()
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "node-3"
    lease = api.get("Lease", "node-3", "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == "node-3"
    assert parse_rfc3339(lease["spec"]["renewTime"]) == clock.now()
    assert events(api, "node-3") == [("NodeReady", clock.now())]


def _heartbeat_time(api: Registry) -> float:
    conditions = api.get("Node", "node-1")["status"]["conditions"]
    return parse_rfc3339(next(c for c in conditions if c["type"] == "Ready")["lastHeartbeatTime"])


def test_heartbeat_renews_lease_every_interval(
    api: Registry, clock: FakeClock, agents: Callable[..., NodeAgent]
) -> None:
    agents()
    t0 = clock.now()
    for i in range(1, 4):
        clock.advance(10.0)
        wait_for(
            lambda i=i: (
                parse_rfc3339(api.get("Lease", "node-1", "kube-node-lease")["spec"]["renewTime"])
                == t0 + 10 * i
            ),
            what=f"renewal {i}",
        )
        # the beat ends with the Node's status: advancing before it is written would start the
        # next interval late (the fake clock's wait counts from when the loop gets back to it)
        wait_for(lambda i=i: _heartbeat_time(api) == t0 + 10 * i, what=f"node status {i}")
    node = api.get("Node", "node-1")
    ready_cond = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert parse_rfc3339(ready_cond["lastHeartbeatTime"]) == t0 + 30
    assert parse_rfc3339(ready_cond["lastTransitionTime"]) == t0  # unchanged: still Ready


def test_runs_bound_pod_to_ready_with_status_and_events(
    api: Registry, clock: FakeClock, agents: Callable[..., NodeAgent]
) -> None:
    agent = agents()
    agents("node-2")
    t0 = clock.now()
    api.create(bound_pod("web-1"))
    api.create(bound_pod("elsewhere", node="node-2"))
    pending = wait_for(
        lambda: api.get("Pod", "web-1").get("status", {}).get("containerStatuses"), what="first status"
    )
    assert pending[0]["state"] == {"waiting": {"reason": "ContainerCreating"}}  # type: ignore[index]
    assert api.get("Pod", "web-1")["status"]["phase"] == "Pending"
    # the agent's cache holds its first write before time moves: its Ready write, made against an
    # older copy, would conflict and wait out a back-off on a clock this test holds still
    wait_for(lambda: (agent.pods.get("default/web-1") or {}).get("status", {}).get("containerStatuses"))
    clock.advance(0.3)  # sandbox 0.1 + start 0.2
    pod = wait_for(lambda: pod_if("web-1", ready), what="pod ready")
    st = pod["status"]  # type: ignore[index]
    assert st["phase"] == "Running"
    assert {c["type"] for c in st["conditions"]} == {
        "PodScheduled",
        "Initialized",
        "ContainersReady",
        "Ready",
    }
    assert st["podIP"] == "10.244.1.2" and st["hostIP"] == "172.18.1.2"
    assert parse_rfc3339(st["startTime"]) == t0
    cs = st["containerStatuses"][0]
    assert (
        cs["ready"]
        and cs["restartCount"] == 0
        and parse_rfc3339(cs["state"]["running"]["startedAt"]) == pytest.approx(t0, abs=1)
    )
    # events are recorded beside the status write, not before it: wait for both
    wait_for(lambda: len(events(api, "web-1")) >= 2, what="Started and Ready events")
    assert sorted(events(api, "web-1")) == [("Ready", t0 + 0.3), ("Started", t0 + 0.3)]
    other = wait_for(
        lambda: pod_if("elsewhere", lambda p: p["status"].get("hostIP")), what="other node's pod"
    )
    assert other["status"]["hostIP"] == "172.18.2.2" and other["status"]["podIP"].startswith("10.244.2.")  # type: ignore[index]


def test_deleted_pod_is_stopped_and_ip_released(
    api: Registry, clock: FakeClock, agents: Callable[..., NodeAgent]
) -> None:
    a = agents()
    api.create(bound_pod("web-1"))
    wait_for(lambda: a.runtime.list_pods(), what="runtime pod")
    # an unconditional delete can still meet the agent's concurrent status write (Conflict): retry
    wait_for(lambda: _try_delete(api, "web-1"), what="delete")
    wait_for(lambda: not a.runtime.list_pods(), what="runtime pod stopped")
    assert a.ipam is not None and a.ipam.in_use() == 0
    wait_for(lambda: "Killing" in [r for r, _ in events(api, "web-1")], what="Killing event")


def _try_delete(api: Registry, name: str) -> bool:
    try:
        api.delete("Pod", name)
    except Conflict:
        return False
    return True


def test_crash_loop_reports_restarts_and_backoff_event(
    api: Registry, clock: FakeClock, agents: Callable[..., NodeAgent]
) -> None:
    agents()
    api.create(bound_pod("crash", annotations={"sim.nbkube.io/fail": "CrashLoopBackOff"}))
    # the agent's first report (a new pod already has the apiserver's Pending status)
    wait_for(lambda: api.get("Pod", "crash")["status"].get("conditions"), what="accepted")
    clock.advance(0.3)
    wait_as_time_passes(clock, lambda: api.get("Pod", "crash")["status"]["phase"] == "Running", "running")
    clock.advance(1.0)  # exits after 1 s
    pod = wait_for(
        lambda: pod_if("crash", lambda p: p["status"]["containerStatuses"][0]["state"].get("waiting")),
        what="crash loop",
    )
    cs = pod["status"]["containerStatuses"][0]  # type: ignore[index]
    assert (
        cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        and cs["lastState"]["terminated"]["exitCode"] == 1
    )
    assert pod["status"]["phase"] == "Running" and not ready(pod)  # type: ignore[arg-type]
    assert "BackOff" in [r for r, _ in events(api, "crash")]


def test_bad_sim_annotation_fails_the_pod_clearly(
    api: Registry, clock: FakeClock, agents: Callable[..., NodeAgent]
) -> None:
    agents()
    api.create(bound_pod("bad", annotations={"sim.nbkube.io/fail": "Boom"}))
    pod = wait_for(
        lambda: pod_if("bad", lambda p: p.get("status", {}).get("phase") == "Failed"), what="failed"
    )
    assert "unknown sim failure mode 'Boom'" in pod["status"]["message"]  # type: ignore[index]


def test_power_off_stops_everything_and_recover_restarts_pods(
    api: Registry, clock: FakeClock, agents: Callable[..., NodeAgent]
) -> None:
    a = agents()
    api.create(bound_pod("web-1"))
    wait_for(lambda: api.get("Pod", "web-1")["status"].get("conditions"), what="accepted")
    clock.advance(0.3)
    wait_as_time_passes(clock, lambda: ready(api.get("Pod", "web-1")), "ready")
    ip = api.get("Pod", "web-1")["status"]["podIP"]
    renew = api.get("Lease", "node-1", "kube-node-lease")["spec"]["renewTime"]
    a.fail("power-off")
    assert a.runtime.list_pods() == []
    clock.advance(10.0)
    time.sleep(0.1)  # give a (wrongly) live heartbeat thread the chance to write; none must
    assert api.get("Lease", "node-1", "kube-node-lease")["spec"]["renewTime"] == renew
    a.recover()
    assert api.get("Lease", "node-1", "kube-node-lease")["spec"]["renewTime"] != renew
    wait_for(lambda: a.runtime.list_pods(), what="pod restarted after power-on")
    assert a.runtime.list_pods()[0].pod_ip == ip  # its address survives


def test_fault_annotation_is_obeyed_and_lifted(
    api: Registry, clock: FakeClock, agents: Callable[..., NodeAgent]
) -> None:
    a = agents()
    api.patch("Node", "node-1", "", {"metadata": {"annotations": {FAULT_ANNOTATION: "stop-heartbeats"}}})
    clock.advance(10.0)
    wait_for(lambda: a.fault == "stop-heartbeats", what="fault obeyed")
    api.patch("Node", "node-1", "", {"metadata": {"annotations": {FAULT_ANNOTATION: None}}})
    clock.advance(10.0)
    wait_for(lambda: a.fault is None, what="fault lifted")
    with pytest.raises(BadRequest, match="unknown fault mode"):
        a.fail("explode")


def test_agent_restart_adopts_node_and_keeps_pod_ip(api: Registry, clock: FakeClock) -> None:
    rt = SimRuntime(clock=clock, latency=LatencyModel(sandbox=0, start=0))
    a = NodeAgent(api, "node-1", rt, heartbeat=10.0, clock=clock)
    a.start()
    try:
        api.create(bound_pod("web-1"))
        wait_for(lambda: ready(api.get("Pod", "web-1")), what="ready")
    finally:
        a.stop()
    ip = api.get("Pod", "web-1")["status"]["podIP"]
    api.create(bound_pod("web-2"))
    b = NodeAgent(
        api,
        "node-1",
        SimRuntime(clock=clock, latency=LatencyModel(sandbox=0, start=0)),
        heartbeat=10.0,
        clock=clock,
    )
    b.start()
    try:
        wait_for(lambda: len(b.runtime.list_pods()) == 2, what="both pods in the new runtime")
        assert api.get("Pod", "web-1")["status"]["podIP"] == ip
        wait_for(lambda: ready(api.get("Pod", "web-2")), what="web-2 ready")
        assert api.get("Pod", "web-2")["status"]["podIP"] != ip
        assert api.get("Node", "node-1")["spec"]["podCIDR"] == "10.244.1.0/24"
    finally:
        b.stop()
    with pytest.raises(NotFound):
        api.get("Node", "node-2")


def test_a_finished_pod_gives_its_address_back(
    api: Registry, clock: FakeClock, agents: Callable[..., NodeAgent]
) -> None:
    agent = agents()
    wait_for(lambda: agent.ipam is not None, what="pod CIDR")
    assert agent.ipam is not None
    pod = bound_pod("batch")
    pod["spec"]["restartPolicy"] = "Never"
    api.create(pod)
    wait_for(lambda: agent.ipam is not None and agent.ipam.in_use() == 1, what="an address in use")
    clock.advance(0.3)
    wait_as_time_passes(
        clock, lambda: pod_if("batch", lambda p: (p.get("status") or {}).get("phase") == "Running"), "running"
    )
    clock.advance(1.0)  # the sim's batch container exits 0 after 1 s
    done = wait_for(
        lambda: pod_if("batch", lambda p: (p.get("status") or {}).get("phase") == "Succeeded"),
        what="Succeeded",
    )
    assert isinstance(done, dict) and done["status"]["podIP"]  # the status keeps it, as upstream's
    wait_for(lambda: agent.ipam is not None and agent.ipam.in_use() == 0, what="the address released")
