"""AgentPool: many node agents on one set of threads; each gets only its own pods' events."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "registry"))
sys.path.insert(0, str(Path(__file__).parent))

from nbk_teststore import leftover_threads, make_store  # noqa: E402
from test_agent import bound_pod, ready, wait_as_time_passes, wait_for  # noqa: E402

from nbkube.client.informer import InformerFactory  # noqa: E402
from nbkube.clock import FakeClock, parse_rfc3339  # noqa: E402
from nbkube.node.agent import NodeAgent  # noqa: E402
from nbkube.node.agentpool import STATUS_BATCH, AgentPool, PendingStatus  # noqa: E402
from nbkube.node.runtime.base import PodSandboxConfig  # noqa: E402
from nbkube.node.runtime.sim import LatencyModel, SimRuntime  # noqa: E402
from nbkube.registry.registry import Registry  # noqa: E402


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api(clock: FakeClock) -> Iterator[Registry]:
    before = set(threading.enumerate())
    reg = Registry(make_store(), clock=clock)
    yield reg
    reg.close()
    reg.store.close()
    assert leftover_threads(before) == []


def _agents(api: Registry, clock: FakeClock, pool: AgentPool, n: int, **kw: object) -> list[NodeAgent]:
    factory = InformerFactory(api)
    out = []
    for i in range(1, n + 1):
        rt = SimRuntime(clock=clock, latency=LatencyModel(sandbox=0.1, start=0.2))
        out.append(
            NodeAgent(api, f"node-{i}", rt, heartbeat=10.0, clock=clock, factory=factory, pool=pool, **kw)  # type: ignore[arg-type]
        )
    factory.start_all()
    assert factory.wait_all_synced(5)
    pool.start()
    for a in out:
        a.start()
    return out


def test_pool_runs_pods_of_many_agents_on_its_own_threads(api: Registry, clock: FakeClock) -> None:
    pool = AgentPool(clock=clock, workers=2, beat_workers=1)
    before = threading.active_count()
    agents = _agents(api, clock, pool, 20)
    try:
        # the pool's threads (ticker, 2 pod workers, 1 heartbeat worker, 1 chores worker), the
        # shared informers' (pods, services, nodes) and the store's watch: none per agent
        assert threading.active_count() - before <= 9
        api.create(bound_pod("a", node="node-3"))
        api.create(bound_pod("b", node="node-17"))
        wait_for(lambda: api.get("Pod", "a").get("status", {}).get("containerStatuses"))
        wait_for(lambda: api.get("Pod", "b").get("status", {}).get("containerStatuses"))
        clock.advance(0.3)
        wait_as_time_passes(
            clock, lambda: ready(api.get("Pod", "a")) and ready(api.get("Pod", "b")), "pods ready"
        )
        a, b = api.get("Pod", "a"), api.get("Pod", "b")
        assert a["status"]["hostIP"] == agents[2].address
        assert b["status"]["hostIP"] == agents[16].address
    finally:
        for ag in agents:
            ag.stop()
        pool.stop()


def test_pool_renews_leases_and_writes_node_status_only_when_due(api: Registry, clock: FakeClock) -> None:
    pool = AgentPool(clock=clock, workers=1, beat_workers=1)
    agents = _agents(api, clock, pool, 3, status_report_interval=60.0)
    try:
        t0 = clock.now()
        status_time = _heartbeat_time(api, "node-2")
        # beats are spread over the interval: within two intervals every lease has moved on
        clock.advance(10.0)
        clock.advance(10.0)
        for ag in agents:
            wait_for(
                lambda ag=ag: _renewed(api, ag.node_name) > t0, what=f"lease of {ag.node_name} renewed"
            )
        # nothing in the Node status changed but heartbeat times: not rewritten before 60 s
        assert _heartbeat_time(api, "node-2") == status_time
        for _ in range(6):
            clock.advance(10.0)
        wait_for(lambda: _heartbeat_time(api, "node-2") > status_time, what="status report due")
    finally:
        for ag in agents:
            ag.stop()
        pool.stop()


def _renewed(api: Registry, node: str) -> float:
    return parse_rfc3339(api.get("Lease", node, "kube-node-lease")["spec"]["renewTime"])


def _heartbeat_time(api: Registry, node: str) -> float:
    conditions = api.get("Node", node)["status"]["conditions"]
    return parse_rfc3339(next(c for c in conditions if c["type"] == "Ready")["lastHeartbeatTime"])


def test_pooled_agents_report_resource_metrics_from_the_pools_beat(api: Registry, clock: FakeClock) -> None:
    from nbkube.client import metrics as metrics_client

    pool = AgentPool(clock=clock, workers=1, beat_workers=1)
    agents = _agents(api, clock, pool, 2)
    try:
        pod = bound_pod("busy", node="node-2")
        pod["metadata"]["annotations"] = {"sim.nbkube.io/cpu": "250m"}
        api.create(pod)
        wait_for(lambda: api.get("Pod", "busy").get("status", {}).get("containerStatuses"))
        clock.advance(0.3)
        wait_as_time_passes(clock, lambda: ready(api.get("Pod", "busy")), "pod ready")
        # two readings make a rate: reports from the beats of later heartbeat intervals (no thread
        # of the agents' own runs the reporter); one interval at a time, so none goes stale
        for _ in range(6):
            clock.advance(10.0)
            try:
                wait_for(lambda: metrics_client.pod_metrics(api, "default"), timeout=1.0)
                break
            except AssertionError:
                continue
        [m] = metrics_client.pod_metrics(api, "default")
        cpu = int(m["containers"][0]["usage"]["cpu"][:-1])  # nanocores
        assert m["metadata"]["name"] == "busy" and abs(cpu - 250_000_000) < 5_000_000, m
    finally:
        for ag in agents:
            ag.stop()
        pool.stop()


def test_pooled_agent_writes_a_pods_first_status_once_it_settled(api: Registry, clock: FakeClock) -> None:
    """A start due within the pool's settle time: one status write (Running, Ready), no
    ContainerCreating write before it; a slower start still shows its waiting state first."""
    pool = AgentPool(clock=clock, workers=1, beat_workers=1, status_settle=0.5)
    agents = _agents(api, clock, pool, 1)  # sandbox 0.1 + start 0.2: settles within 0.5
    w = api.watch("Pod", "default")
    asked: list[str] = []  # status writes the agent asks for, written or not
    real = api.update_status

    def spy(obj, **kw):  # type: ignore[no-untyped-def]
        asked.append(obj["metadata"]["name"])
        return real(obj, **kw)

    api.update_status = spy  # type: ignore[method-assign]
    try:
        api.create(bound_pod("fast", node="node-1"))
        wait_for(lambda: agents[0].runtime.list_pods(), what="pod started in the runtime")
        clock.advance(0.3)
        wait_for(lambda: ready(api.get("Pod", "fast")), what="fast ready")
        written = []
        while (ev := w.next(0.2)) is not None:
            if ev.type == "MODIFIED":
                written.append(ev.object["status"].get("phase"))
        assert written == ["Running"]
        # a resync of the pod once its own write came back to the agent's informer: nothing to write
        wait_for(lambda: ready(agents[0].pods.get("default/fast") or {}), what="agent saw its write")
        agents[0].queue.add("default/fast")
        clock.advance(0.3)
        time.sleep(0.3)
        assert asked == ["fast"]
        assert api.get("Pod", "fast")["status"]["containerStatuses"][0]["state"].get("running")
    finally:
        del api.update_status  # the class's again
        w.cancel()
        for ag in agents:
            ag.stop()
        pool.stop()
    pool2 = AgentPool(clock=clock, workers=1, beat_workers=1, status_settle=0.1)
    agents = _agents(api, clock, pool2, 1)
    try:
        api.create(bound_pod("slow", node="node-1"))
        waiting = wait_for(
            lambda: api.get("Pod", "slow").get("status", {}).get("containerStatuses"), what="first status"
        )
        assert waiting[0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    finally:
        for ag in agents:
            ag.stop()
        pool2.stop()


def test_the_echo_of_a_pooled_status_write_is_not_synced_a_change_by_another_is(
    api: Registry, clock: FakeClock
) -> None:
    """The pod update that is the pool's own status write coming back holds only what the agent
    wrote: it queues nothing. Any other update of the pod (here a label) queues it."""
    pool = AgentPool(clock=clock, workers=1, beat_workers=1, status_settle=0.5)
    agents = _agents(api, clock, pool, 1)
    queued: list[str] = []
    real_add = agents[0].queue.add

    def spy(key: str) -> None:
        queued.append(key)
        real_add(key)

    agents[0].queue.add = spy  # type: ignore[method-assign]
    try:
        api.create(bound_pod("p", node="node-1"))
        wait_for(lambda: agents[0].runtime.list_pods(), what="pod started in the runtime")
        clock.advance(0.3)
        wait_for(lambda: ready(api.get("Pod", "p")), what="p ready")
        written = api.get("Pod", "p")["metadata"]["resourceVersion"]
        wait_for(
            lambda: (agents[0].pods.get("default/p") or {}).get("metadata", {}).get("resourceVersion") == written,
            what="the agent's informer saw its write",
        )
        time.sleep(0.2)
        assert queued == ["default/p"]  # the bind's event only; the echo of the Running write: none
        pod = api.get("Pod", "p")
        api.update({**pod, "metadata": {**pod["metadata"], "labels": {"tier": "web"}}})
        wait_for(lambda: len(queued) == 2, what="the label change queued the pod")
        assert queued == ["default/p", "default/p"]
    finally:
        for ag in agents:
            ag.stop()
        pool.stop()


def test_pool_renews_the_leases_of_agents_due_together_in_one_batch(api: Registry, clock: FakeClock) -> None:
    pool = AgentPool(clock=clock, workers=1, beat_workers=1)
    agents = _agents(api, clock, pool, 5)
    batches: list[int] = []
    real = api.update_many

    def spy(objs, **kw):  # type: ignore[no-untyped-def]
        batches.append(len(objs))
        return real(objs, **kw)

    api.update_many = spy  # type: ignore[method-assign]
    try:
        t0 = clock.now()
        clock.advance(25.0)  # every agent's first beat is due at this one tick
        for ag in agents:
            wait_for(lambda ag=ag: _renewed(api, ag.node_name) > t0, what=f"lease of {ag.node_name} renewed")
        assert batches and max(batches) == 5
        # a Lease changed behind an agent's back: its renewal conflicts alone and is redone
        lease = api.get("Lease", "node-3", "kube-node-lease")
        api.update({**lease, "spec": {**lease["spec"], "leaseDurationSeconds": 99}})
        t1 = clock.now()
        clock.advance(10.0)
        for ag in agents:
            wait_for(lambda ag=ag: _renewed(api, ag.node_name) > t1, what=f"lease of {ag.node_name} renewed")
        assert api.get("Lease", "node-3", "kube-node-lease")["spec"]["leaseDurationSeconds"] == 40
    finally:
        for ag in agents:
            ag.stop()
        pool.stop()


def test_pool_writes_pod_statuses_through_update_many_each_with_its_own_cas(
    api: Registry, clock: FakeClock
) -> None:
    pool = AgentPool(clock=clock, workers=1, beat_workers=1)
    agents = _agents(api, clock, pool, 3)
    status_batches: list[int] = []
    real = api.update_many

    def spy(objs, **kw):  # type: ignore[no-untyped-def]
        if kw.get("status"):
            status_batches.append(len(objs))
        return real(objs, **kw)

    api.update_many = spy  # type: ignore[method-assign]
    try:
        for i in range(9):
            api.create(bound_pod(f"p{i}", node=f"node-{i % 3 + 1}"))
        for i in range(9):
            wait_for(lambda i=i: api.get("Pod", f"p{i}").get("status", {}).get("containerStatuses"))
        clock.advance(0.3)
        wait_as_time_passes(clock, lambda: all(ready(api.get("Pod", f"p{i}")) for i in range(9)), "pods ready")
        assert status_batches and sum(status_batches) >= 9
        # the agent's events follow the write, as for a lone write (recorded after it lands, so
        # the last pod's Ready event may still be on its way when the pod reads Ready)
        def reasons() -> set[tuple[str, str]]:
            return {(e["involvedObject"]["name"], e["reason"]) for e in api.list("Event", "default")[0]}

        wait_for(lambda: all((f"p{i}", "Ready") in reasons() for i in range(9)), what="Ready events")
        # a held write whose pod changed meanwhile conflicts alone, and the pod is retried
        p0 = api.get("Pod", "p0")
        api.update({**p0, "metadata": {**p0["metadata"], "labels": {"moved": "on"}}})
        fresh = api.get("Pod", "p1")
        held = [
            PendingStatus(agents[0], "default/p0", p0, p0["status"], {**p0["status"], "message": "x"}, None),
            PendingStatus(agents[1], "default/p1", fresh, fresh["status"], {**fresh["status"], "message": "y"}, None),
        ]
        retried: list[str] = []
        agents[0].queue.add_rate_limited = retried.append  # type: ignore[method-assign]
        pool._write_statuses(held)
        assert api.get("Pod", "p1")["status"]["message"] == "y"
        assert api.get("Pod", "p0")["status"].get("message") != "x"
        assert "default/p0" in retried
    finally:
        for ag in agents:
            ag.stop()
        pool.stop()


def test_a_pool_that_falls_behind_beats_less_often_instead_of_queueing_beats(
    api: Registry, clock: FakeClock
) -> None:
    pool = AgentPool(clock=clock, workers=1, beat_workers=1)
    agents = _agents(api, clock, pool, 3)
    release = threading.Event()
    beats: list[tuple[str, float]] = []
    real_begin = NodeAgent.beat_begin

    def slow_begin(self: NodeAgent):  # type: ignore[no-untyped-def]
        beats.append((self.node_name, clock.monotonic()))
        release.wait(10)  # the first beats hang, as a pool starved of the GIL
        return real_begin(self)

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(NodeAgent, "beat_begin", slow_begin)
            clock.advance(25.0)  # every agent's first beat is due
            wait_for(lambda: len(beats) >= 1, what="a beat begun")
            for _ in range(5):  # 50 s of intervals pass while that beat hangs
                clock.advance(10.0)
            release.set()
            wait_for(lambda: len(beats) >= 3, what="every agent's first beat")
            t_done = clock.monotonic()
            time.sleep(0.3)  # room for any beat still queued to show up (none should)
            # nothing more was queued meanwhile: one beat each, not one per interval that passed
            assert sorted(n for n, _t in beats) == ["node-1", "node-2", "node-3"]
            clock.advance(9.9)
            time.sleep(0.3)
            assert len(beats) == 3, "the next beat is one interval after the last one finished"
            clock.advance(0.2)
            wait_for(lambda: len(beats) == 6, what="the next beats")
            assert all(t >= t_done + 10.0 for _n, t in beats[3:])
    finally:
        for ag in agents:
            ag.stop()
        pool.stop()


def test_leases_are_renewed_while_the_rest_of_the_beats_hang(api: Registry, clock: FakeClock) -> None:
    pool = AgentPool(clock=clock, workers=1, beat_workers=1)
    agents = _agents(api, clock, pool, 3)
    names = [a.node_name for a in agents]
    release = threading.Event()
    chores: list[str] = []
    real_chores = NodeAgent.beat_chores

    def slow_chores(self: NodeAgent) -> None:
        chores.append(self.node_name)
        release.wait(10)  # node status, metrics and relist stuck, as behind a starved GIL
        real_chores(self)

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(NodeAgent, "beat_chores", slow_chores)
            before = {n: _renewed(api, n) for n in names}
            clock.advance(20.1)  # every agent's first beat is due (within one interval of its start)
            for _ in range(4):  # and in each of four intervals after it, every Lease is renewed
                wait_for(lambda b=before: all(_renewed(api, n) > b[n] for n in names), what="renewals")
                before = {n: _renewed(api, n) for n in names}
                clock.advance(10.1)
            wait_for(lambda b=before: all(_renewed(api, n) > b[n] for n in names), what="renewals")
            # the first chore hangs; the agents' later beats queued theirs once each, not once a beat
            assert len(chores) == 1
            assert pool._chores_queued == set(names)
            assert len(pool.chores) <= 1
            release.set()
            wait_for(lambda: not pool._chores_queued and len(pool.chores) == 0, what="chores done")
            assert sorted(set(chores)) == names
    finally:
        release.set()
        for ag in agents:
            ag.stop()
        pool.stop()


def test_relisted_keys_wait_behind_fresher_work_and_are_fed_as_the_queue_runs_short(clock: FakeClock) -> None:
    """A relist's keys go to the pod queue only while it holds less than a batch: a new pod's
    first sync never waits behind thousands of nodes' relists. Each relisted key is fed once."""
    pool = AgentPool(clock=clock)
    q1, q2 = pool.queue_for("node-1"), pool.queue_for("node-2")
    fresh = [f"default/new-{i}" for i in range(STATUS_BATCH)]
    for key in fresh:
        q1.add(key)
    q2.add_resync(["default/old-a", "default/old-b"])
    q2.add_resync(["default/old-a"])  # relisted again before it was fed: still once
    taken = [pool.pods.get(0) for _ in range(len(fresh))]
    assert taken == [f"node-1\0{key}" for key in fresh]
    assert pool.pods.get(0) is None  # the relisted keys wait
    pool._feed_resyncs()  # what a pod worker does after each batch
    assert [pool.pods.get(0), pool.pods.get(0), pool.pods.get(0)] == [
        "node-2\0default/old-a",
        "node-2\0default/old-b",
        None,
    ]
    q2.add_resync(["default/old-c"])  # a short queue: fed at once
    assert pool.pods.get(0) == "node-2\0default/old-c"


def test_a_pooled_agents_relist_stops_a_runtime_pod_the_api_does_not_have(api: Registry, clock: FakeClock) -> None:
    """The relist repairs a lost event through the pool's relist lane: a pod the runtime runs but
    no API object binds here (its delete was missed) is stopped at the next relist."""
    pool = AgentPool(clock=clock, workers=1, beat_workers=1)
    agents = _agents(api, clock, pool, 1, relist_interval=30.0)
    try:
        orphan = {**bound_pod("orphan"), "metadata": {"name": "orphan", "namespace": "default", "uid": "u-orphan"}}
        agents[0].runtime.start_pod(orphan, PodSandboxConfig("node-1", "10.244.1.9", "10.244.1.0/24", "172.18.1.2"))
        assert [p.name for p in agents[0].runtime.list_pods()] == ["orphan"]
        for _ in range(5):  # heartbeats every 10 s; the relist is due 30 s after the agent started
            clock.advance(10.0)
            time.sleep(0.05)
        wait_for(lambda: not agents[0].runtime.list_pods(), what="the orphan stopped by the relist")
    finally:
        for ag in agents:
            ag.stop()
        pool.stop()
