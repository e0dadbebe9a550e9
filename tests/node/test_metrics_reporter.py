"""The node agent's metrics reporter: rates from two cumulative readings over the clock's window,
pods named from their API objects, restarted counters, node totals; the store it reports into
(freshness, one node's report replacing its last); and the runtimes' raw readings."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

from nbkube.clock import FakeClock
from nbkube.node.metrics import MetricsReporter
from nbkube.node.runtime.base import PodSandboxConfig
from nbkube.node.runtime.docker import _raw_usage
from nbkube.node.runtime.sim import SimRuntime
from nbkube.node.runtime.usage import RawUsage, session_usage
from nbkube.registry.metrics import (
    MetricsStore,
    NodeUsage,
    PodUsage,
    node_metrics_obj,
    pod_metrics_obj,
    usage_from_objs,
)


class FakeRuntime:
    name = "fake"

    def __init__(self) -> None:
        self.readings: dict[str, dict[str, RawUsage]] = {}

    def usage(self) -> dict[str, dict[str, RawUsage]]:
        return {uid: dict(c) for uid, c in self.readings.items()}


class FakeApi:
    def __init__(self, clock: FakeClock) -> None:
        self.metrics = MetricsStore(clock=clock)


def _pod(uid: str, name: str) -> dict[str, Any]:
    return {"metadata": {"uid": uid, "name": name, "namespace": "default", "labels": {"app": "web"}}}


def test_rates_from_two_readings_and_node_totals() -> None:
    clock = FakeClock()
    api = FakeApi(clock)
    rt = FakeRuntime()
    rep = MetricsReporter(api, "n1", rt, lambda: [_pod("u1", "web-1")], interval=10.0, clock=clock)
    rt.readings = {"u1": {"c": RawUsage(1.0, 10 * 1024 * 1024)}}
    rep.report_once()
    assert api.metrics.pods() == []  # one reading: no rate yet
    clock.advance(10)
    rt.readings = {"u1": {"c": RawUsage(3.5, 12 * 1024 * 1024)}}  # 2.5 CPU-seconds in 10 s
    rep.report_once()
    [p] = api.metrics.pods("default")
    assert (p.name, p.cpu_nanocores, p.memory_bytes, p.window, p.labels) == (
        "web-1", 250_000_000, 12 * 1024 * 1024, 10.0, {"app": "web"}
    )
    node = api.metrics.node("n1")
    assert node is not None and node.cpu_nanocores == 250_000_000
    obj = pod_metrics_obj(p)
    assert obj["containers"] == [{"name": "c", "usage": {"cpu": "250000000n", "memory": "12288Ki"}}]
    assert obj["window"] == "10s"


def test_a_restarted_counter_starts_over_and_unknown_pods_are_left_out() -> None:
    clock = FakeClock()
    api = FakeApi(clock)
    rt = FakeRuntime()
    rep = MetricsReporter(api, "n1", rt, lambda: [_pod("u1", "web-1")], interval=5.0, clock=clock)
    rt.readings = {"u1": {"c": RawUsage(9.0, 1)}, "gone": {"c": RawUsage(1.0, 1)}}
    rep.report_once()
    clock.advance(5)
    rt.readings = {"u1": {"c": RawUsage(0.5, 1)}, "gone": {"c": RawUsage(2.0, 1)}}  # u1 restarted
    rep.report_once()
    assert api.metrics.pods() == []
    clock.advance(5)
    rt.readings = {"u1": {"c": RawUsage(1.0, 1)}}
    rep.report_once()
    assert [p.cpu_nanocores for p in api.metrics.pods()] == [100_000_000]


def test_an_inactive_node_reports_nothing_and_stale_figures_drop_out() -> None:
    clock = FakeClock()
    store = MetricsStore(clock=clock, max_age=30)
    store.report(NodeUsage("n1", clock.now(), 10, 1, 1), [PodUsage("default", "a", clock.now(), 10, ())])
    store.report(NodeUsage("n1", clock.now(), 10, 2, 2), [])  # replaces n1's pods
    assert store.pods() == [] and store.node("n1") is not None
    clock.advance(31)
    assert store.node("n1") is None and store.nodes() == []


def test_remote_report_round_trip_and_bad_input() -> None:
    node = NodeUsage("n1", 1_700_000_000.0, 15.0, 5_000_000, 2048 * 1024, {"role": "x"})
    pod = PodUsage("default", "p", 1_700_000_000.0, 15.0, ())
    back_node, back_pods = usage_from_objs(node_metrics_obj(node), [pod_metrics_obj(pod)])
    assert back_node == node and back_pods[0].name == "p" and back_pods[0].node == "n1"
    import pytest

    from nbkube.errors import BadRequest

    with pytest.raises(BadRequest, match="NodeMetrics"):
        usage_from_objs({"metadata": {"name": "n1"}}, [])
    with pytest.raises(BadRequest, match=r"pods\[0\]"):
        usage_from_objs(node_metrics_obj(node), [{"metadata": {}}])


def test_sim_usage_follows_the_annotations() -> None:
    clock = FakeClock()
    rt = SimRuntime(clock=clock)
    pod = {
        "metadata": {"uid": "u1", "name": "p", "namespace": "default",
                     "annotations": {"sim.nbkube.io/cpu": "250m", "sim.nbkube.io/memory": "32Mi"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }  # fmt: skip
    rt.start_pod(pod, PodSandboxConfig("n1", "10.0.0.2", "10.0.0.0/24", "10.0.0.1"))
    clock.advance(100)
    first = rt.usage()["u1"]["c"]
    clock.advance(10)
    second = rt.usage()["u1"]["c"]
    assert abs((second.cpu_seconds - first.cpu_seconds) - 2.5) < 1e-6 and second.memory_bytes == 32 * 1024 * 1024
    import pytest

    from nbkube.errors import BadRequest

    bad = {**pod, "metadata": {**pod["metadata"], "uid": "u2", "annotations": {"sim.nbkube.io/cpu": "lots"}}}
    with pytest.raises(BadRequest, match="sim.nbkube.io/cpu"):
        rt.start_pod(bad, PodSandboxConfig("n1", "10.0.0.3", "10.0.0.0/24", "10.0.0.1"))


def test_session_usage_counts_a_busy_session_and_its_reaped_children() -> None:
    # a session whose leader waits for a busy child: the child's CPU reaches the leader's cutime
    proc = subprocess.Popen(
        ["sh", "-c", "(i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done); sleep 5"], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got = session_usage().get(proc.pid)
            if got is not None and got.cpu_seconds > 0.05:
                break
            time.sleep(0.1)
        assert got is not None and got.cpu_seconds > 0.05 and got.memory_bytes > 0, got
        assert os.getsid(proc.pid) == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_docker_stats_working_set() -> None:
    stats = {
        "cpu_stats": {"cpu_usage": {"total_usage": 2_500_000_000}},
        "memory_stats": {"usage": 50 * 1024 * 1024, "stats": {"inactive_file": 10 * 1024 * 1024}},
    }
    assert _raw_usage(stats) == RawUsage(2.5, 40 * 1024 * 1024)
    v1 = {"cpu_stats": {"cpu_usage": {"total_usage": 0}}, "memory_stats": {"usage": 5, "stats": {"total_inactive_file": 9}}}
    assert _raw_usage(v1) == RawUsage(0.0, 0)
