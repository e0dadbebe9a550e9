"""The sim runtime's latency model and failure modes, driven by a FakeClock (exact times, no sleeps)."""

from __future__ import annotations

import pytest

from nbkube.clock import FakeClock
from nbkube.errors import BadRequest
from nbkube.node.runtime import available_runtimes, create_runtime, register_runtime
from nbkube.node.runtime.base import PodSandboxConfig, Runtime
from nbkube.node.runtime.sim import LatencyModel, SimRuntime

SANDBOX = PodSandboxConfig(
    node_name="node-1", pod_ip="10.244.1.2", pod_cidr="10.244.1.0/24", host_ip="172.18.1.2"
)


def pod(
    uid: str = "u1", *, annotations: dict[str, str] | None = None, image: str = "nginx", **spec: object
) -> dict:
    return {
        "metadata": {
            "name": f"p-{uid}",
            "namespace": "default",
            "uid": uid,
            "annotations": annotations or {},
        },
        "spec": {"containers": [{"name": "c", "image": image}], **spec},
    }


def test_pending_creating_running_ready_at_exact_latencies() -> None:
    clock = FakeClock()
    rt = SimRuntime(clock=clock, latency=LatencyModel(sandbox=0.5, pull=1.0, start=0.5, ready=2.0))
    assert isinstance(rt, Runtime)
    rt.start_pod(pod(), SANDBOX)
    st = rt.pod_status("u1")
    assert st is not None and st.pod_ip == "10.244.1.2"
    assert st.containers[0].state == "waiting" and st.containers[0].reason == "ContainerCreating"
    assert st.next_check == pytest.approx(2.0)
    clock.advance(1.999)
    assert rt.pod_status("u1").containers[0].state == "waiting"  # type: ignore[union-attr]
    clock.advance(0.001)
    st = rt.pod_status("u1")
    assert st is not None and st.all_running and not st.all_ready
    assert st.containers[0].started_at == pytest.approx(clock.now())
    assert st.next_check == pytest.approx(2.0)
    clock.advance(2.0)
    st = rt.pod_status("u1")
    assert st is not None and st.all_ready and st.next_check is None
    wire = st.containers[0].to_wire()
    assert wire["ready"] is True and "running" in wire["state"] and wire["restartCount"] == 0


def test_readiness_probe_initial_delay_adds_to_ready_latency() -> None:
    clock = FakeClock()
    rt = SimRuntime(clock=clock, latency=LatencyModel(sandbox=0, start=0, ready=1.0))
    p = pod()
    p["spec"]["containers"][0]["readinessProbe"] = {"initialDelaySeconds": 5}
    rt.start_pod(p, SANDBOX)
    clock.advance(5.9)
    assert not rt.pod_status("u1").all_ready  # type: ignore[union-attr]
    clock.advance(0.1)
    assert rt.pod_status("u1").all_ready  # type: ignore[union-attr]


def test_jitter_is_seeded_and_reproducible() -> None:
    def start_times(seed: int) -> list[float]:
        clock = FakeClock()
        rt = SimRuntime(clock=clock, latency=LatencyModel(sandbox=0.1, start=0.1, jitter=1.0), seed=seed)
        for i in range(5):
            rt.start_pod(pod(f"u{i}"), SANDBOX)
        return [rt.pod_status(f"u{i}").next_check for i in range(5)]  # type: ignore[union-attr,misc]

    a, b, c = start_times(7), start_times(7), start_times(8)
    assert a == b and a != c
    assert all(0.2 <= x < 1.2 for x in a)


def test_start_is_idempotent_and_stop_forgets() -> None:
    clock = FakeClock()
    rt = SimRuntime(clock=clock)
    rt.start_pod(pod(), SANDBOX)
    clock.advance(10)
    rt.start_pod(pod(), SANDBOX)  # a second call does not restart it
    st = rt.pod_status("u1")
    assert st is not None and st.created_at == clock.now() - 10
    assert [p.uid for p in rt.list_pods()] == ["u1"]
    rt.stop_pod("u1")
    rt.stop_pod("unknown")
    assert rt.pod_status("u1") is None and rt.list_pods() == []


def test_err_image_pull_by_image_then_backoff() -> None:
    clock = FakeClock()
    rt = SimRuntime(
        clock=clock, latency=LatencyModel(sandbox=0, start=0), fail_images={"nginx:bad": "ErrImagePull"}
    )
    rt.start_pod(pod(image="nginx:bad"), SANDBOX)
    c = rt.pod_status("u1").containers[0]  # type: ignore[union-attr]
    assert (c.state, c.reason) == ("waiting", "ErrImagePull") and "nginx:bad" in c.message
    clock.advance(1.0)
    assert rt.pod_status("u1").containers[0].reason == "ImagePullBackOff"  # type: ignore[union-attr]


def test_crash_loop_restarts_with_doubling_backoff() -> None:
    clock = FakeClock()
    lat = LatencyModel(sandbox=0, start=0, restart_backoff=1.0)
    rt = SimRuntime(clock=clock, latency=lat)
    rt.start_pod(
        pod(annotations={"sim.nbkube.io/fail": "CrashLoopBackOff", "sim.nbkube.io/run-seconds": "2"}), SANDBOX
    )
    assert rt.pod_status("u1").containers[0].state == "running"  # type: ignore[union-attr]
    clock.advance(2.0)  # exits at 2, back-off 1 s
    c = rt.pod_status("u1").containers[0]  # type: ignore[union-attr]
    assert (c.state, c.reason, c.restart_count) == ("waiting", "CrashLoopBackOff", 0)
    assert c.last_terminated is not None and c.last_terminated["exitCode"] == 1
    clock.advance(1.0)  # restarted at 3, runs until 5, back-off 2 s
    c = rt.pod_status("u1").containers[0]  # type: ignore[union-attr]
    assert (c.state, c.restart_count) == ("running", 1)
    clock.advance(3.99)
    assert rt.pod_status("u1").containers[0].state == "waiting"  # type: ignore[union-attr]
    clock.advance(0.01)  # 7: second restart
    assert rt.pod_status("u1").containers[0].restart_count == 2  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("policy", "code", "state"),
    [("Never", 0, "terminated"), ("OnFailure", 0, "terminated"), ("OnFailure", 3, "waiting")],
)
def test_exit_codes_follow_restart_policy(policy: str, code: int, state: str) -> None:
    clock = FakeClock()
    rt = SimRuntime(clock=clock, latency=LatencyModel(sandbox=0, start=0))
    rt.start_pod(pod(annotations={"sim.nbkube.io/fail": f"exit:{code}"}, restartPolicy=policy), SANDBOX)
    clock.advance(1.5)
    c = rt.pod_status("u1").containers[0]  # type: ignore[union-attr]
    assert c.state == state
    if state == "terminated":
        assert c.exit_code == code and c.reason == ("Completed" if code == 0 else "Error")
        assert c.to_wire()["state"]["terminated"]["exitCode"] == code


def test_not_ready_mode_runs_but_never_ready() -> None:
    clock = FakeClock()
    rt = SimRuntime(clock=clock, latency=LatencyModel(sandbox=0, start=0))
    rt.start_pod(pod(annotations={"sim.nbkube.io/fail": "NotReady"}), SANDBOX)
    clock.advance(100)
    st = rt.pod_status("u1")
    assert st is not None and st.all_running and not st.all_ready and st.next_check is None


def test_bad_failure_modes_and_latencies_are_clear_errors() -> None:
    rt = SimRuntime(clock=FakeClock())
    with pytest.raises(BadRequest, match="sim.nbkube.io/fail.*unknown sim failure mode 'Boom'"):
        rt.start_pod(pod(annotations={"sim.nbkube.io/fail": "Boom"}), SANDBOX)
    assert rt.list_pods() == []
    with pytest.raises(BadRequest, match="jitter must be a number >= 0"):
        LatencyModel(jitter=-1)
    with pytest.raises(BadRequest, match="fail_images"):
        SimRuntime(fail_images={"x": "nope"})


def test_runtime_registry_by_name() -> None:
    clock = FakeClock()
    rt = create_runtime("sim", clock=clock, seed=3)
    assert isinstance(rt, SimRuntime) and rt.name == "sim"
    assert "sim" in available_runtimes()
    with pytest.raises(BadRequest, match="unknown runtime 'nope'"):
        create_runtime("nope")
    register_runtime("sim2", lambda **kw: SimRuntime(**kw))
    assert isinstance(create_runtime("sim2"), SimRuntime)
    with pytest.raises(BadRequest, match="reserved"):
        register_runtime("auto", SimRuntime)


@pytest.mark.parametrize(("policy", "finishes"), [("Never", True), ("OnFailure", True), ("Always", False)])
def test_batch_pods_run_to_completion_without_a_failure_mode(policy: str, finishes: bool) -> None:
    clock = FakeClock()
    rt = SimRuntime(clock=clock, latency=LatencyModel(sandbox=0, start=0))
    rt.start_pod(pod(annotations={"sim.nbkube.io/run-seconds": "2"}, restartPolicy=policy), SANDBOX)
    clock.advance(1.9)
    assert rt.pod_status("u1").containers[0].state == "running"  # type: ignore[union-attr]
    clock.advance(0.2)
    c = rt.pod_status("u1").containers[0]  # type: ignore[union-attr]
    if finishes:
        assert (c.state, c.exit_code, c.reason) == ("terminated", 0, "Completed")
    else:
        assert c.state == "running"  # a service pod runs until it is stopped
    assert rt.release_sandbox("u1") is True


@pytest.mark.parametrize(
    "annotations",
    [
        {},
        {"sim.nbkube.io/fail": "NotReady"},
        {"sim.nbkube.io/fail": "ErrImagePull"},
        {"sim.nbkube.io/fail": "CrashLoopBackOff", "sim.nbkube.io/run-seconds": "2"},
    ],
)
def test_usage_counts_cpu_of_running_containers_since_they_started(annotations: dict[str, str]) -> None:
    """usage() says of each pod what its replayed status says: a running container has used its CPU
    annotation's share since it started, a waiting one is absent (the steady state takes a shortcut)."""
    clock = FakeClock(start=100.0)
    rt = SimRuntime(clock=clock, latency=LatencyModel(sandbox=0.5, start=0.5, restart_backoff=1.0))
    annotations = {**annotations, "sim.nbkube.io/cpu": "250m", "sim.nbkube.io/memory": "8Mi"}
    spec = pod(annotations=annotations)
    spec["spec"]["containers"].append({"name": "side", "image": "busybox"})
    rt.start_pod(spec, SANDBOX)
    for step in (0.0, 0.5, 0.5, 1.0, 1.5, 0.5, 6.0):
        clock.advance(step)
        status = rt.pod_status("u1")
        assert status is not None
        expected = {
            c.name: (0.25 * (clock.now() - c.started_at), 8 * 1024 * 1024)
            for c in status.containers
            if c.state == "running" and c.started_at is not None
        }
        got = {name: (u.cpu_seconds, u.memory_bytes) for name, u in rt.usage()["u1"].items()}
        assert got.keys() == expected.keys(), (step, annotations)
        for name, (cpu, memory) in expected.items():
            assert got[name][0] == pytest.approx(cpu) and got[name][1] == memory
    if not annotations.get("sim.nbkube.io/fail"):
        assert set(rt.usage()["u1"]) == {"c", "side"}  # the steady state was reached and counted
