"""The process runtime with real host processes (busybox), each pod on its own loopback address.

Every test bounds its waits, and the fixture checks after `close()` that no process the runtime
started is left (a /proc scan for anything whose working directory lies under the state dir).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nbkube.errors import BadRequest, NotFound
from nbkube.node.runtime import create_runtime
from nbkube.node.runtime.base import ContainerStatus, PodRuntimeStatus, PodSandboxConfig, Runtime
from nbkube.node.runtime.process import (
    ProcessRuntime,
    _proc_start_ticks,
    expand_vars,
    find_busybox,
    is_busybox_image,
    volume_env_name,
)

pytestmark = pytest.mark.skipif(find_busybox() is None, reason="needs the host's busybox (busybox-static)")

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def sandbox(ip: str = "127.244.1.2") -> PodSandboxConfig:
    return PodSandboxConfig(node_name="node-1", pod_ip=ip, pod_cidr="127.244.1.0/24", host_ip="127.240.0.2")


def pod(uid: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": f"pod-{uid}", "namespace": "default", "uid": uid, "labels": {"app": "web"}},
        "spec": {"containers": list(containers), **spec},
    }


def ctr(name: str = "c", image: str = "busybox", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **fields}


def sh(script: str, name: str = "c", **fields: Any) -> dict[str, Any]:
    return ctr(name, command=["sh", "-c", script], **fields)


def wait_for(
    fn: Callable[[], Any], what: str, timeout: float = 8.0
) -> Any:  # bounded polling: real processes give no event to wait on
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def container(rt: ProcessRuntime, uid: str, index: int = 0) -> ContainerStatus:
    st = rt.pod_status(uid)
    assert st is not None
    return st.containers[index]


def processes_under(path: str) -> list[int]:
    """pids of live processes whose working directory lies under `path` (zombies have none)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if cwd.startswith(path):
            out.append(int(entry))
    return out


def pid_of(st: ContainerStatus) -> int:
    assert st.container_id.startswith("process://"), st
    return int(st.container_id.removeprefix("process://"))


def get(url: str) -> str:
    with _NO_PROXY.open(url, timeout=3) as resp:
        return str(resp.read().decode())


@pytest.fixture
def state_dir(tmp_path: Path) -> str:
    return str(tmp_path / "state")


@pytest.fixture
def rt(state_dir: str) -> Iterator[ProcessRuntime]:
    runtime = ProcessRuntime(state_dir, backoff_base=0.1, stop_grace_cap=1.0)
    try:
        yield runtime
    finally:
        runtime.close()
        assert processes_under(state_dir) == []
        assert not runtime._thread.is_alive()


def test_busybox_shell_runs_logs_and_execs(rt: ProcessRuntime) -> None:
    assert isinstance(rt, Runtime)
    rt.start_pod(pod("u1", sh("echo hi; sleep 30")), sandbox())
    rt.start_pod(pod("u1", sh("echo again")), sandbox())  # idempotent per uid
    c = wait_for(lambda: container(rt, "u1").state == "running" and container(rt, "u1"), "running")
    assert c.ready and c.restart_count == 0 and c.started_at is not None
    wait_for(lambda: "hi" in str(rt.logs("u1", "c")), "log line")
    st = rt.pod_status("u1")
    assert isinstance(st, PodRuntimeStatus) and st.pod_ip == "127.244.1.2" and st.sandbox_ready
    assert [p.uid for p in rt.list_pods()] == ["u1"]
    code, out = rt.exec("u1", "c", ["sh", "-c", "echo $HOSTNAME; exit 3"])
    assert (code, out) == (3, "pod-u1\n")
    with pytest.raises(NotFound):
        rt.exec("u1", "nope", ["true"])
    with pytest.raises(NotFound):
        rt.logs("gone", "c")


def test_two_pods_serve_the_same_port_on_their_own_loopback_ips(rt: ProcessRuntime) -> None:
    web = sh(
        "echo $(MY_NAME) > index.html; exec httpd -f -p $(POD_IP):8080",
        env=[
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        ports=[{"containerPort": 8080}],
    )
    rt.start_pod(pod("a", web), sandbox("127.244.1.21"))
    rt.start_pod(pod("b", web), sandbox("127.244.1.22"))
    for uid, ip in (("a", "127.244.1.21"), ("b", "127.244.1.22")):
        body = wait_for(lambda ip=ip: _try_get(f"http://{ip}:8080/"), f"pod {uid} serving")
        assert body == f"pod-{uid}\n"
    for uid in ("a", "b"):
        assert container(rt, uid).state == "running"


def _try_get(url: str) -> str | None:
    try:
        return get(url)
    except OSError:
        return None


def test_exit_at_once_with_always_crash_loops_with_growing_back_off(rt: ProcessRuntime) -> None:
    rt.start_pod(pod("u1", sh("echo boom; exit 2")), sandbox())
    c = wait_for(lambda: container(rt, "u1").restart_count >= 3 and container(rt, "u1"), "restarts", 10)
    c = wait_for(
        lambda: container(rt, "u1").reason == "CrashLoopBackOff" and container(rt, "u1"), "CrashLoopBackOff"
    )
    assert c.state == "waiting" and "back-off" in c.message
    assert c.last_terminated is not None and c.last_terminated["exitCode"] == 2
    assert c.last_terminated["reason"] == "Error"
    st = rt.pod_status("u1")
    assert st is not None and st.next_check is not None and 0 <= st.next_check <= rt.max_backoff
    assert str(rt.logs("u1", "c")).count("boom") >= 3  # every run appends to the one log


def test_on_failure_exit_zero_completes_and_never_keeps_the_error(rt: ProcessRuntime) -> None:
    rt.start_pod(pod("ok", sh("exit 0"), restartPolicy="OnFailure"), sandbox())
    rt.start_pod(pod("bad", sh("exit 3"), restartPolicy="Never"), sandbox("127.244.1.3"))
    ok = wait_for(lambda: container(rt, "ok").state == "terminated" and container(rt, "ok"), "completed")
    assert (ok.reason, ok.exit_code, ok.restart_count, ok.ready) == ("Completed", 0, 0, False)
    bad = wait_for(lambda: container(rt, "bad").state == "terminated" and container(rt, "bad"), "error")
    assert (bad.reason, bad.exit_code, bad.restart_count) == ("Error", 3, 0)
    assert bad.finished_at is not None and bad.started_at is not None


def test_readiness_http_probe_flips_ready_both_ways(rt: ProcessRuntime) -> None:
    web = sh(
        "sleep 0.3; echo ok > index.html; exec httpd -f -p $(POD_IP):8080",
        env=[{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        readinessProbe={
            "httpGet": {"path": "/index.html", "port": 8080},
            "periodSeconds": 0.1,
            "failureThreshold": 1,
        },
    )
    rt.start_pod(pod("u1", web), sandbox("127.244.1.30"))
    first = wait_for(lambda: container(rt, "u1").state == "running" and container(rt, "u1"), "running")
    assert not first.ready  # the server is not up yet
    wait_for(lambda: container(rt, "u1").ready, "ready")
    assert rt.exec("u1", "c", ["rm", "index.html"])[0] == 0
    wait_for(lambda: not container(rt, "u1").ready, "unready after the page went (404)")
    assert container(rt, "u1").state == "running" and container(rt, "u1").restart_count == 0


def test_liveness_failure_restarts_the_container(rt: ProcessRuntime) -> None:
    c = sh(
        "sleep 30",
        livenessProbe={
            "exec": {"command": ["test", "-f", "alive"]},
            "periodSeconds": 0.1,
            "failureThreshold": 2,
        },
    )
    rt.start_pod(pod("u1", c), sandbox())
    first = wait_for(lambda: container(rt, "u1").state == "running" and container(rt, "u1"), "running")
    st = wait_for(lambda: container(rt, "u1").restart_count >= 1 and container(rt, "u1"), "liveness restart")
    assert st.last_terminated is not None and st.last_terminated["reason"] == "Unhealthy"
    assert "Liveness probe failed" in st.last_terminated["message"]
    assert not os.path.exists(f"/proc/{pid_of(first)}/cwd")  # the old process is gone


def test_image_other_than_busybox_needs_an_explicit_host_command(rt: ProcessRuntime) -> None:
    rt.start_pod(pod("u1", ctr(image="nginx:1.25")), sandbox())
    c = wait_for(lambda: container(rt, "u1").reason == "ErrImagePull" and container(rt, "u1"), "ErrImagePull")
    assert c.state == "waiting"
    assert c.message == (
        "image nginx:1.25 cannot run on the process runtime: only busybox, "
        "or an explicit command available on this host"
    )
    rt.start_pod(pod("u2", ctr(image="nginx", command=["no-such-program-xyz"])), sandbox())
    c2 = wait_for(
        lambda: container(rt, "u2").reason == "CreateContainerError" and container(rt, "u2"), "error"
    )
    assert "no-such-program-xyz" in c2.message
    rt.start_pod(pod("u3", ctr(image="python:3", command=["sh", "-c", "sleep 30"])), sandbox())
    wait_for(lambda: container(rt, "u3").state == "running", "host sh runs for any image with a command")


def test_port_below_1024_is_refused_when_unprivileged(state_dir: str) -> None:
    rt = ProcessRuntime(state_dir, unprivileged=True, backoff_base=0.1)
    try:
        rt.start_pod(pod("u1", sh("sleep 30", ports=[{"containerPort": 80}])), sandbox())
        c = wait_for(lambda: container(rt, "u1").message and container(rt, "u1"), "port message")
        assert c.state == "waiting" and c.reason == "CreateContainerConfigError"
        assert c.message.startswith(
            "port 80 needs root: the process runtime runs as an unprivileged user; use 8080"
        )
    finally:
        rt.close()


def test_env_expansion_downward_api_and_escapes(rt: ProcessRuntime) -> None:
    env = [
        {"name": "GREETING", "value": "hello"},
        {"name": "MSG", "value": "$(GREETING) world $$(GREETING) $(UNKNOWN)"},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "HOST_IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIPs"}}},
    ]
    c = ctr(
        command=["sh", "-c"],
        args=["echo '$(MSG)'/$NS/$UID/$NODE/$HOST_IP/$APP/$HOST_IPS/${POD_IP:-none}; sleep 30"],
        env=env,
    )
    rt.start_pod(pod("u1", c), sandbox())
    out = wait_for(lambda: str(rt.logs("u1", "c")).strip(), "output")
    assert out == "hello world $(GREETING) $(UNKNOWN)/default/u1/node-1/127.240.0.2/web/127.240.0.2/none"


def test_expand_vars_and_image_names() -> None:
    assert expand_vars("$(A)-$$(A)-$(B)-$$", {"A": "1"}) == "1-$(A)-$(B)-$"
    for image in ("busybox", "busybox:1.36", "docker.io/library/busybox:latest", "library/busybox@sha256:ab"):
        assert is_busybox_image(image), image
    for image in ("nginx", "example.com/busybox", "busybox-extra"):
        assert not is_busybox_image(image), image
    assert volume_env_name("cache-dir.1") == "NBKUBE_VOLUME_CACHE_DIR_1"


def test_empty_dir_is_shared_and_mounts_are_explained(rt: ProcessRuntime, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "greeting").write_text("from host\n")
    mounts = [{"name": "data", "mountPath": "/data"}, {"name": "h", "mountPath": "/h"}]
    writer = sh("echo shared > $NBKUBE_VOLUME_DATA/f; sleep 30", name="writer", volumeMounts=mounts)
    reader = sh(
        "while [ ! -f $NBKUBE_VOLUME_DATA/f ]; do sleep 0.05; done; cat $NBKUBE_VOLUME_DATA/f $NBKUBE_VOLUME_H/greeting; sleep 30",
        name="reader",
    )
    volumes = [{"name": "data", "emptyDir": {}}, {"name": "h", "hostPath": {"path": str(host)}}]
    rt.start_pod(pod("u1", writer, reader, volumes=volumes), sandbox())
    wait_for(lambda: "from host" in str(rt.logs("u1", "reader")), "reader saw both volumes", 5)
    assert str(rt.logs("u1", "reader")) == "shared\nfrom host\n"
    w = container(rt, "u1", 0)
    assert w.state == "running" and "not mounted" in w.message and "$NBKUBE_VOLUME_DATA" in w.message
    assert str(rt.logs("u1", "writer")).startswith("[nbkube] volumeMounts are not mounted")
    pod_dir = os.path.join(rt.state_dir, "pods", "u1")
    assert os.path.isfile(os.path.join(pod_dir, "volumes", "data", "f"))
    rt.stop_pod("u1")
    assert not os.path.exists(pod_dir) and rt.pod_status("u1") is None
    assert (host / "greeting").exists()  # hostPath data is the host's, never removed


def test_unsupported_volume_waits_with_a_clear_message(rt: ProcessRuntime) -> None:
    rt.start_pod(
        pod("u1", sh("sleep 30"), volumes=[{"name": "n", "nfs": {"server": "x", "path": "/"}}]), sandbox()
    )
    c = wait_for(lambda: container(rt, "u1").message and container(rt, "u1"), "volume message")
    assert c.state == "waiting" and "volume n: type nfs is not supported by the process runtime" in c.message


def test_config_map_env_through_the_resolver_hook(state_dir: str) -> None:
    data = {"color": b"blue"}

    def resolve(_pod: dict, volume: dict) -> dict[str, bytes] | None:
        return data if (volume.get("configMap") or {}).get("name") == "settings" else None

    rt = ProcessRuntime(state_dir, resolve_volume=resolve, backoff_base=0.1)
    try:
        ref = {"configMapKeyRef": {"name": "settings", "key": "color"}}
        missing = {"configMapKeyRef": {"name": "absent", "key": "x"}}
        rt.start_pod(
            pod("u1", sh("echo $COLOR; sleep 30", env=[{"name": "COLOR", "valueFrom": ref}])), sandbox()
        )
        rt.start_pod(pod("u2", sh("sleep 30", env=[{"name": "X", "valueFrom": missing}])), sandbox())
        wait_for(lambda: str(rt.logs("u1", "c")) == "blue\n", "env from the ConfigMap")
        c = wait_for(lambda: container(rt, "u2").message and container(rt, "u2"), "missing key")
        assert c.reason == "CreateContainerConfigError" and "'absent' not found" in c.message
        assert container(rt, "u2").state == "waiting"
    finally:
        rt.close()


def test_working_dir_is_honoured_when_it_exists(rt: ProcessRuntime, tmp_path: Path) -> None:
    rt.start_pod(pod("u1", sh("pwd; sleep 30", workingDir=str(tmp_path))), sandbox())
    wait_for(lambda: str(rt.logs("u1", "c")) == f"{tmp_path}\n", "pwd")


def test_logs_tail_and_follow_end_with_the_container(rt: ProcessRuntime) -> None:
    rt.start_pod(pod("u1", sh("echo a; echo b; sleep 0.3; echo c"), restartPolicy="Never"), sandbox())
    wait_for(lambda: "b" in str(rt.logs("u1", "c")), "first lines")
    follow = rt.logs("u1", "c", follow=True)
    assert not isinstance(follow, str)
    assert "".join(follow) == "a\nb\nc\n"  # ends once the container has terminated
    assert rt.logs("u1", "c", tail=1) == "c\n"
    assert rt.logs("u1", "c", tail=0) == ""


def test_stop_and_close_kill_whole_groups_even_stubborn_ones(state_dir: str) -> None:
    rt = ProcessRuntime(state_dir, backoff_base=0.1, stop_grace_cap=0.3)
    stubborn = sh("trap '' TERM; sleep 30 & sleep 30 & wait", terminationGracePeriodSeconds=30)
    rt.start_pod(pod("u1", stubborn), sandbox())
    rt.start_pod(pod("u2", stubborn), sandbox())
    rt.start_pod(pod("u3", sh("sleep 30 & exec sleep 30")), sandbox())
    wait_for(lambda: len(processes_under(state_dir)) >= 8, "every process up")
    u1 = processes_under(os.path.join(state_dir, "pods", "u1"))
    rt.stop_pod("u1")
    assert not any(os.path.exists(f"/proc/{pid}/cwd") for pid in u1)
    assert rt.pod_status("u1") is None
    rt.close()
    assert processes_under(state_dir) == []
    rt.close()  # twice is harmless
    with pytest.raises(BadRequest, match="closed"):
        rt.start_pod(pod("u9", sh("true")), sandbox())


def test_a_new_runtime_kills_what_it_cannot_adopt(state_dir: str) -> None:
    leftover_dir = os.path.join(state_dir, "pods", "old")
    os.makedirs(leftover_dir)
    orphan = subprocess.Popen(["sleep", "30"], start_new_session=True, cwd=leftover_dir)
    try:
        # a state file without the pod (foreign or damaged): its processes must not survive
        state = {
            "uid": "old",
            "containers": {"c": {"pid": orphan.pid, "ticks": _proc_start_ticks(orphan.pid)}},
        }
        with open(os.path.join(leftover_dir, "state.json"), "w") as f:
            json.dump(state, f)
        rt = ProcessRuntime(state_dir)
        try:
            assert (rt.adopted, rt.killed_leftovers) == (0, 1)
            assert orphan.wait(timeout=5) == -signal.SIGKILL
            assert not os.path.exists(leftover_dir) and rt.list_pods() == []
        finally:
            rt.close()
    finally:
        orphan.kill()
        orphan.wait(timeout=5)


def test_a_restarted_runtime_adopts_running_pods(state_dir: str) -> None:
    web = sh(
        "echo up; echo hi > index.html; exec httpd -f -p $(IP):8080",
        env=[{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 0.1},
    )
    try:
        _adopt_and_restart(state_dir, web)
    finally:
        ProcessRuntime(state_dir).close()  # whatever a failed assertion left: adopted, then killed
    assert processes_under(state_dir) == []


def _adopt_and_restart(state_dir: str, web: dict[str, Any]) -> None:
    first = ProcessRuntime(state_dir, backoff_base=0.1)
    try:
        first.start_pod(pod("u1", web), sandbox("127.244.1.40"))
        first.start_pod(pod("done", sh("exit 0"), restartPolicy="Never"), sandbox())
        wait_for(lambda: container(first, "u1").ready, "ready")
        wait_for(lambda: container(first, "done").state == "terminated", "done")
        pid = pid_of(container(first, "u1"))
    finally:
        first.close(remove=False)  # a node agent's restart: the pods go on
    assert os.path.exists(f"/proc/{pid}/cwd") and _try_get("http://127.244.1.40:8080/") is not None
    second = ProcessRuntime(state_dir, backoff_base=0.1)
    try:
        assert second.adopted == 2 and second.killed_leftovers == 0
        c = container(second, "u1")
        assert (c.state, c.ready, pid_of(c), c.restart_count) == ("running", True, pid, 0)
        assert container(second, "done").reason == "Completed"
        assert str(second.logs("u1", "c")).startswith("up\n")
        second.start_pod(pod("u1", web), sandbox("127.244.1.40"))  # the agent's start: nothing new
        assert pid_of(container(second, "u1")) == pid
        os.killpg(pid, signal.SIGKILL)  # the adopted process dies: restarted under the policy
        c = wait_for(
            lambda: container(second, "u1").restart_count == 1 and container(second, "u1"), "restart"
        )
        assert c.last_terminated is not None and c.last_terminated["exitCode"] == 137
        wait_for(lambda: container(second, "u1").state == "running", "running again")
    finally:
        second.close()


def test_adopting_a_process_that_is_not_our_child(state_dir: str) -> None:
    from nbkube.node.runtime import process as module

    first = ProcessRuntime(state_dir, backoff_base=0.1)
    try:
        first.start_pod(pod("u1", sh("sleep 30")), sandbox())
        pid = pid_of(
            wait_for(lambda: container(first, "u1").state == "running" and container(first, "u1"), "up")
        )
    finally:
        first.close(remove=False)
    child = module._CHILDREN.pop(pid)  # as after a crash: the new runtime is not its parent
    try:
        second = ProcessRuntime(state_dir, backoff_base=0.1)
        try:
            assert pid_of(container(second, "u1")) == pid
            os.killpg(pid, signal.SIGTERM)
            c = wait_for(
                lambda: container(second, "u1").restart_count == 1 and container(second, "u1"), "restart"
            )
            assert c.last_terminated is not None and "exit code unknown" in c.last_terminated["message"]
        finally:
            second.close()
    finally:
        child.kill()
        child.wait(timeout=5)
    assert processes_under(state_dir) == []


def test_registry_and_bad_input(state_dir: str) -> None:
    rt = create_runtime("process", state_dir=state_dir, backoff_base=0.1)
    try:
        assert isinstance(rt, ProcessRuntime) and rt.name == "process"
        with pytest.raises(BadRequest, match="uid"):
            rt.start_pod({"metadata": {"name": "x"}, "spec": {"containers": [ctr()]}}, sandbox())
        with pytest.raises(BadRequest, match=r"spec.containers\[0\] needs a name and an image"):
            rt.start_pod(pod("u1", {"name": "c"}), sandbox())
        with pytest.raises(BadRequest, match=r"spec.containers\[0\].readinessProbe.periodSeconds"):
            rt.start_pod(
                pod("u1", ctr(readinessProbe={"tcpSocket": {"port": 1}, "periodSeconds": -1})), sandbox()
            )
        assert rt.list_pods() == []  # nothing half-started
        rt.stop_pod("unknown")  # ignored
    finally:
        rt.close()
    with pytest.raises(BadRequest, match="backoff_base"):
        ProcessRuntime(state_dir, backoff_base=0)
    with pytest.raises(BadRequest, match="busybox"):
        ProcessRuntime(state_dir, busybox="/nonexistent/busybox")


def test_only_this_state_dirs_unaccounted_orphans_are_killed(tmp_path):
    """Another node's or another cluster's leftovers are theirs to adopt: never killed from here."""
    import subprocess as sp

    from nbkube.node.runtime.process import _OWNER, OWNER_ENV, STATE_ENV, reap_orphans

    mine = str(tmp_path / "mine")

    def spawn(owner: str, state: str) -> sp.Popen[bytes]:
        env = {"PATH": "/usr/bin:/bin", OWNER_ENV: owner, STATE_ENV: state}
        return sp.Popen(["sleep", "60"], env=env, start_new_session=True)

    other_node = spawn("999999999:1", str(tmp_path / "other-node"))  # a dead runtime's, elsewhere
    unaccounted = spawn("999999999:1", mine)
    adopted = spawn("999999999:1", mine)
    live_owner = spawn(_OWNER, mine)
    procs = (other_node, unaccounted, adopted, live_owner)
    try:
        assert reap_orphans(mine, keep=[adopted.pid]) == 1
        assert unaccounted.wait(5) == -signal.SIGKILL
        assert all(p.poll() is None for p in (other_node, adopted, live_owner))
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(5)


def test_a_foreign_process_group_that_looks_alike_survives_a_new_runtime(tmp_path):
    """A `sleep` started outside, in a session of its own, with a dead owner and another cluster's
    state directory in its environment, survives a runtime's start and close."""
    import subprocess as sp

    from nbkube.node.runtime.process import OWNER_ENV, STATE_ENV

    env = {
        "PATH": "/usr/bin:/bin",
        OWNER_ENV: "999999999:1",
        STATE_ENV: str(tmp_path / "someone-else" / "process" / "node-1"),
        "NBKUBE_CLUSTER": "0123456789abcdef",
        "NBKUBE_NODE": "node-1",
    }
    foreign = sp.Popen(["sleep", "60"], env=env, start_new_session=True)
    try:
        rt = ProcessRuntime(str(tmp_path / "me" / "process" / "node-1"), backoff_base=0.1)
        assert rt.reaped_orphans == 0
        rt.close()
        assert foreign.poll() is None
    finally:
        foreign.kill()
        foreign.wait(5)


def test_container_processes_carry_the_identity_and_inherit_the_given_descriptors(tmp_path) -> None:
    lock = tmp_path / "held.lock"
    lock.write_text("")
    fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    identity = {"NBKUBE_CLUSTER": "c0ffee", "NBKUBE_NODE": "node-1"}
    rt = ProcessRuntime(str(tmp_path / "rt"), backoff_base=0.1, pass_fds=(fd,), identity=identity)
    try:
        # a declared env cannot pass the container off as another cluster's
        rt.start_pod(
            pod("u1", sh("sleep 30", env=[{"name": "NBKUBE_CLUSTER", "value": "forged"}])), sandbox()
        )
        pid = pid_of(wait_for(lambda: container(rt, "u1").state == "running" and container(rt, "u1"), "up"))
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"NBKUBE_CLUSTER=c0ffee" in environ and b"NBKUBE_NODE=node-1" in environ
        assert os.readlink(f"/proc/{pid}/fd/{fd}") == str(lock)
    finally:
        rt.close()
        os.close(fd)


def test_scratch_files_live_in_the_pods_folder_and_go_with_it(rt: ProcessRuntime) -> None:
    """$TMPDIR is the pod's own folder under the state dir (the cluster's folder), not the host's /tmp:
    the article's web pod writes its page to ${TMPDIR:-/tmp}/www-$POD_NAME."""
    script = (
        "d=${TMPDIR:-/tmp}/www-pod-u1; mkdir -p $d && echo page > $d/index.html && echo $TMPDIR; sleep 30"
    )
    rt.start_pod(pod("u1", sh(script, name="a"), sh("echo $TMPDIR; sleep 30", name="b")), sandbox())
    pod_dir = os.path.join(rt.state_dir, "pods", "u1")
    wait_for(lambda: str(rt.logs("u1", "a")).strip(), "TMPDIR printed")
    tmp = str(rt.logs("u1", "a")).strip()
    assert tmp == os.path.join(pod_dir, "tmp")
    wait_for(lambda: str(rt.logs("u1", "b")).strip() == tmp, "both containers share it")
    assert Path(tmp, "www-pod-u1", "index.html").read_text() == "page\n"
    assert not os.path.exists("/tmp/www-pod-u1")
    rt.stop_pod("u1")
    assert not os.path.exists(tmp)
