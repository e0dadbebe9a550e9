"""The process runtime honours every pod field it accepts, or refuses the pod naming the field and
the runtime: envFrom, startupProbe, lifecycle hooks, initContainers, resources.limits,
emptyDir.sizeLimit and hostPath types (nbkube/node/runtime/podfields.py says which). Real busybox
processes; every wait bounded."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nbkube.errors import BadRequest
from nbkube.node.runtime.base import ContainerStatus, PodSandboxConfig
from nbkube.node.runtime.process import ProcessRuntime, find_busybox

pytestmark = pytest.mark.skipif(find_busybox() is None, reason="needs the host's busybox (busybox-static)")

DATA = {
    "settings": {"color": b"blue", "size": b"L", "bad key": b"skipped"},
    "creds": {"user": b"ada"},
}


def _resolve(_pod: dict[str, Any], volume: dict[str, Any]) -> dict[str, bytes] | None:
    ref = volume.get("configMap") or {}
    name = ref.get("name") or (volume.get("secret") or {}).get("secretName")
    return DATA.get(str(name))


def sandbox() -> PodSandboxConfig:
    return PodSandboxConfig(
        node_name="node-1", pod_ip="127.0.0.1", pod_cidr="127.0.0.0/24", host_ip="127.0.0.1"
    )


def pod(uid: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": f"pod-{uid}", "namespace": "default", "uid": uid},
        "spec": {"containers": list(containers), **spec},
    }


def sh(script: str, name: str = "c", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script], **fields}


def wait_for(fn: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def status(rt: ProcessRuntime, uid: str, index: int = 0) -> ContainerStatus:
    st = rt.pod_status(uid)
    assert st is not None
    return st.containers[index]


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[ProcessRuntime]:
    runtime = ProcessRuntime(
        str(tmp_path / "state"), resolve_volume=_resolve, backoff_base=0.1, stop_grace_cap=2.0
    )
    try:
        yield runtime
    finally:
        runtime.close()


def test_env_from_config_maps_and_secrets_with_prefix_and_optional(rt: ProcessRuntime) -> None:
    c = sh(
        'echo "$CFG_color $CFG_size $user $color"; sleep 30',
        envFrom=[
            {"configMapRef": {"name": "settings"}, "prefix": "CFG_"},
            {"secretRef": {"name": "creds"}},
            {"configMapRef": {"name": "absent", "optional": True}},
        ],
        env=[{"name": "CFG_size", "value": "XL"}],  # env wins over envFrom
    )
    rt.start_pod(pod("u1", c), sandbox())
    wait_for(lambda: rt.logs("u1", "c") == "blue XL ada \n", "the variables of envFrom")
    code, out = rt.exec("u1", "c", ["sh", "-c", "env | grep -c skipped || true"])
    assert out.strip() == "0"  # a key that is no variable name is not exported
    rt.start_pod(pod("u2", sh("sleep 30", envFrom=[{"secretRef": {"name": "nope"}}])), sandbox())
    st = wait_for(lambda: status(rt, "u2").message and status(rt, "u2"), "the missing Secret")
    assert st.state == "waiting" and st.reason == "CreateContainerConfigError"
    assert st.message == "envFrom: secret 'nope' not found"


def test_startup_probe_holds_other_probes_and_readiness_until_it_passes(rt: ProcessRuntime) -> None:
    c = sh(
        "sleep 0.5; touch started; sleep 30",
        startupProbe={
            "exec": {"command": ["test", "-f", "started"]},
            "periodSeconds": 0.1,
            "failureThreshold": 50,
        },
        # would kill the container at once if it ran before the startup probe passed
        livenessProbe={
            "exec": {"command": ["test", "-f", "started"]},
            "periodSeconds": 0.1,
            "failureThreshold": 1,
        },
    )
    rt.start_pod(pod("u1", c), sandbox())
    first = wait_for(lambda: status(rt, "u1").state == "running" and status(rt, "u1"), "running")
    assert not first.ready and first.to_wire()["started"] is False
    done = wait_for(lambda: status(rt, "u1").ready and status(rt, "u1"), "ready after the startup probe")
    assert done.restart_count == 0 and done.to_wire()["started"] is True


def test_startup_probe_failing_restarts_the_container(rt: ProcessRuntime) -> None:
    c = sh(
        "sleep 30",
        startupProbe={"exec": {"command": ["false"]}, "periodSeconds": 0.1, "failureThreshold": 2},
    )
    rt.start_pod(pod("u1", c), sandbox())
    st = wait_for(lambda: status(rt, "u1").restart_count >= 1 and status(rt, "u1"), "a restart")
    assert st.last_terminated is not None and st.last_terminated["reason"] == "Unhealthy"
    assert "Startup probe failed" in st.last_terminated["message"]


def test_post_start_and_pre_stop_hooks_run(rt: ProcessRuntime, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    c = sh(
        "sleep 30",
        lifecycle={
            "postStart": {"exec": {"command": ["sh", "-c", f"echo post > {marks}/post"]}},
            "preStop": {"exec": {"command": ["sh", "-c", f"echo pre > {marks}/pre"]}},
        },
    )
    rt.start_pod(pod("u1", c), sandbox())
    wait_for(lambda: (marks / "post").exists(), "the postStart hook")
    assert not (marks / "pre").exists()
    rt.stop_pod("u1")
    assert (marks / "pre").read_text() == "pre\n"  # before the container was signalled


def test_a_failing_post_start_hook_restarts_the_container(rt: ProcessRuntime) -> None:
    c = sh("sleep 30", lifecycle={"postStart": {"exec": {"command": ["sh", "-c", "echo nope; exit 4"]}}})
    rt.start_pod(pod("u1", c), sandbox())
    st = wait_for(lambda: status(rt, "u1").restart_count >= 1 and status(rt, "u1"), "a restart")
    assert st.last_terminated is not None
    assert "PostStartHookError" in str(st.last_terminated.get("message") or st.message)


def test_init_containers_run_in_order_before_the_app(rt: ProcessRuntime, tmp_path: Path) -> None:
    log = tmp_path / "order"
    init = [sh(f"sleep 0.2; echo one >> {log}", name="one"), sh(f"echo two >> {log}", name="two")]
    rt.start_pod(pod("u1", sh(f"echo app >> {log}; sleep 30"), initContainers=init), sandbox())
    first = status(rt, "u1")
    assert first.state == "waiting" and first.reason == "PodInitializing"
    wait_for(lambda: status(rt, "u1").state == "running", "the app container")
    wait_for(lambda: log.exists() and log.read_text() == "one\ntwo\napp\n", "all three, in order")
    assert rt.logs("u1", "one") == ""  # an init container's log stays readable


def test_a_failing_init_container_fails_the_pod_or_loops(rt: ProcessRuntime) -> None:
    bad = [sh("exit 3", name="setup")]
    rt.start_pod(pod("never", sh("sleep 30"), initContainers=bad, restartPolicy="Never"), sandbox())
    rt.start_pod(pod("always", sh("sleep 30"), initContainers=bad), sandbox())
    failed = wait_for(lambda: status(rt, "never").state == "terminated" and status(rt, "never"), "Init:Error")
    assert failed.reason == "Init:Error" and failed.exit_code == 3
    looping = wait_for(
        lambda: status(rt, "always").reason == "Init:CrashLoopBackOff" and status(rt, "always"),
        "a crash loop",
    )
    assert looping.state == "waiting" and "init container setup exited with 3" in looping.message


def test_memory_limit_bounds_the_address_space(rt: ProcessRuntime) -> None:
    c = sh("sleep 30", resources={"limits": {"memory": "64Mi"}})
    rt.start_pod(pod("u1", c), sandbox())
    st = wait_for(lambda: status(rt, "u1").state == "running" and status(rt, "u1"), "running")
    pid = int(st.container_id.removeprefix("process://"))
    with open(f"/proc/{pid}/limits") as f:
        line = next(x for x in f if x.startswith("Max address space"))
    assert line.split()[3:5] == [str(64 * 1024 * 1024)] * 2
    code, _ = rt.exec("u1", "c", ["sh", "-c", "ulimit -v"])  # exec runs under the same limit
    assert code == 0


def test_what_cannot_be_enforced_is_refused_naming_field_and_runtime(rt: ProcessRuntime) -> None:
    cpu = pod("u1", sh("sleep 1", resources={"limits": {"cpu": "500m", "memory": "64Mi"}}))
    with pytest.raises(
        BadRequest, match=r"spec\.containers\[0\]\.resources\.limits\.cpu: Forbidden: the process runtime"
    ):
        rt.start_pod(cpu, sandbox())
    storage = pod("u2", sh("sleep 1", resources={"limits": {"ephemeral-storage": "1Gi"}}))
    with pytest.raises(
        BadRequest, match=r"limits\.ephemeral-storage: Forbidden: the process runtime cannot enforce"
    ):
        rt.start_pod(storage, sandbox())
    sized = pod("u3", sh("sleep 1"), volumes=[{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}])
    with pytest.raises(
        BadRequest, match=r"spec\.volumes\[0\]\.emptyDir\.sizeLimit: Forbidden: the process runtime"
    ):
        rt.start_pod(sized, sandbox())
    hook = pod("u4", sh("sleep 1", lifecycle={"preStop": {"grpc": {"port": 1}}}))
    with pytest.raises(
        BadRequest, match=r"lifecycle\.preStop: Forbidden: the process runtime runs exactly one of"
    ):
        rt.start_pod(hook, sandbox())
    assert rt.list_pods() == []


def test_host_path_types_are_checked(rt: ProcessRuntime, tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    vols = [{"name": "h", "hostPath": {"path": str(tmp_path / "dir"), "type": "File"}}]
    rt.start_pod(pod("u1", sh("sleep 30"), volumes=vols), sandbox())
    st = wait_for(lambda: status(rt, "u1").message and status(rt, "u1"), "the hostPath error")
    assert st.reason == "CreateContainerConfigError" and "is not a File" in st.message
    made = tmp_path / "made" / "file"
    vols = [{"name": "h", "hostPath": {"path": str(made), "type": "FileOrCreate"}}]
    rt.start_pod(pod("u2", sh("sleep 30"), volumes=vols), sandbox())
    wait_for(lambda: status(rt, "u2").state == "running", "running with a made file")
    assert os.path.isfile(made)


def test_a_full_disk_is_one_line_not_one_per_state_change(
    rt: ProcessRuntime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import errno
    import logging

    import nbkube.node.runtime.process as process_module

    def full(*_args: Any, **_kw: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(process_module, "replace_file", full)
    with caplog.at_level(logging.INFO, logger="nbkube"):
        for i in range(5):
            rt.start_pod(pod(f"full{i}", sh("exit 1")), sandbox())  # crash loops: a save per exit
        wait_for(lambda: all(status(rt, f"full{i}").restart_count >= 2 for i in range(5)), "crash loops")
    lines = [r for r in caplog.records if "saving pod state" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert "(disk full)" in lines[0].getMessage()


def test_a_tty_container_is_refused_not_run_on_pipes() -> None:
    from nbkube.node.runtime.podfields import refusals

    pod = {"spec": {"containers": [{"name": "c", "image": "busybox", "tty": True, "stdin": True}]}}
    (line,) = refusals(pod, "process")
    assert line.startswith("spec.containers[0].tty: Forbidden: the process runtime")
    assert refusals(pod, "docker") == []
