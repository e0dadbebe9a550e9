"""The Docker runtime honours the pod fields it accepts, or refuses them naming field and runtime:
envFrom, startupProbe (shared ProbeTracker), lifecycle hooks, a subPath naming one file (one
ConfigMap key), emptyDir.sizeLimit on a tmpfs. Against a real dockerd (marked `docker`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nbkube.errors import BadRequest
from nbkube.node.runtime.base import ContainerStatus, PodSandboxConfig
from nbkube.node.runtime.docker import LABEL_NODE, DockerRuntime
from nbkube.node.runtime.images import seed_busybox

pytestmark = pytest.mark.docker

SANDBOX = PodSandboxConfig(node_name="n", pod_ip="10.244.1.2", pod_cidr="10.244.1.0/24", host_ip="10.240.0.2")
DATA = {"settings": {"app.conf": b"port=1\n", "color": b"blue"}, "creds": {"user": b"ada"}}


def _resolve(_pod: dict[str, Any], volume: dict[str, Any]) -> dict[str, bytes] | None:
    name = (volume.get("configMap") or {}).get("name") or (volume.get("secret") or {}).get("secretName")
    return DATA.get(str(name))


@pytest.fixture
def rt(docker_client: Any, tmp_path: Any) -> Iterator[DockerRuntime]:
    seed_busybox(docker_client)
    node = f"t{uuid.uuid4().hex[:8]}"
    runtime = DockerRuntime(
        docker_client,
        node_name=node,
        state_dir=str(tmp_path / "state"),
        backoff_base=0.2,
        poll_interval=0.1,
        resolve_volume=_resolve,
    )
    try:
        yield runtime
    finally:
        runtime.close(remove=True)
        for c in docker_client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={node}"}):
            c.remove(force=True)


def wait_for(fn: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")


def pod(name: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}-{uuid.uuid4().hex[:6]}"},
        "spec": {"containers": list(containers), **spec},
    }


def sh(script: str, name: str = "c", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script], **fields}


def status(rt: DockerRuntime, p: dict[str, Any]) -> ContainerStatus:
    st = rt.pod_status(str(p["metadata"]["uid"]))
    assert st is not None
    return st.containers[0]


def test_env_from_sub_path_file_and_sized_tmpfs(rt: DockerRuntime) -> None:
    c = sh(
        "sleep 3600",
        envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}, {"secretRef": {"name": "creds"}}],
        volumeMounts=[
            {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},  # one key, as a file
            {"name": "mem", "mountPath": "/mem"},
        ],
    )
    p = pod(
        "fields",
        c,
        volumes=[
            {"name": "cfg", "configMap": {"name": "settings"}},
            {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
        ],
    )
    rt.start_pod(p, SANDBOX)
    wait_for(lambda: status(rt, p).state == "running", "running")
    uid = str(p["metadata"]["uid"])
    _, out = rt.exec(
        uid, "c", ["sh", "-c", 'echo "$CFG_color $user"; cat /etc/app.conf; grep " /mem " /proc/mounts']
    )
    lines = out.splitlines()
    assert lines[:2] == ["blue ada", "port=1"]
    assert "size=8192k" in lines[2]


def test_startup_probe_then_readiness_and_hooks(rt: DockerRuntime) -> None:
    c = sh(
        "sleep 1; touch /started; sleep 3600",
        startupProbe={
            "exec": {"command": ["test", "-f", "/started"]},
            "periodSeconds": 0.2,
            "failureThreshold": 100,
        },
        livenessProbe={
            "exec": {"command": ["test", "-f", "/started"]},
            "periodSeconds": 0.2,
            "failureThreshold": 1,
        },
        lifecycle={"postStart": {"exec": {"command": ["sh", "-c", "echo post > /post"]}}},
    )
    p = pod("startup", c)
    rt.start_pod(p, SANDBOX)
    first = wait_for(lambda: status(rt, p).state == "running" and status(rt, p), "running")
    assert not first.ready
    done = wait_for(lambda: status(rt, p).ready and status(rt, p), "ready after the startup probe")
    assert done.restart_count == 0 and done.to_wire()["started"] is True
    code, out = rt.exec(str(p["metadata"]["uid"]), "c", ["cat", "/post"])
    assert (code, out) == (0, "post\n")


def test_failing_startup_probe_and_post_start_hook_restart(rt: DockerRuntime) -> None:
    startup = pod(
        "nostart",
        sh(
            "sleep 3600",
            startupProbe={"exec": {"command": ["false"]}, "periodSeconds": 0.2, "failureThreshold": 2},
        ),
    )
    hook = pod("badhook", sh("sleep 3600", lifecycle={"postStart": {"exec": {"command": ["false"]}}}))
    rt.start_pod(startup, SANDBOX)
    rt.start_pod(hook, SANDBOX)
    st = wait_for(lambda: status(rt, startup).restart_count >= 1 and status(rt, startup), "startup restart")
    assert st.last_terminated is not None and "Startup probe failed" in st.last_terminated["message"]
    st = wait_for(lambda: status(rt, hook).restart_count >= 1 and status(rt, hook), "postStart restart")
    assert st.last_terminated is not None and "PostStartHookError" in st.last_terminated["message"]


def test_pre_stop_runs_before_removal(rt: DockerRuntime, tmp_path: Any) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    c = sh(
        "sleep 3600",
        volumeMounts=[{"name": "marks", "mountPath": "/marks"}],
        lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "echo pre > /marks/pre"]}}},
    )
    p = pod("prestop", c, volumes=[{"name": "marks", "hostPath": {"path": str(marks)}}])
    rt.start_pod(p, SANDBOX)
    wait_for(lambda: status(rt, p).state == "running", "running")
    rt.stop_pod(str(p["metadata"]["uid"]))
    wait_for(lambda: (marks / "pre").exists(), "the preStop hook's mark", timeout=30)
    assert (marks / "pre").read_text() == "pre\n"


def test_what_docker_cannot_enforce_is_refused(rt: DockerRuntime) -> None:
    disk = pod("disk", sh("sleep 1"), volumes=[{"name": "d", "emptyDir": {"sizeLimit": "1Gi"}}])
    with pytest.raises(
        BadRequest, match=r"spec\.volumes\[0\]\.emptyDir\.sizeLimit: Forbidden: the docker runtime"
    ):
        rt.start_pod(disk, SANDBOX)
    storage = pod("storage", sh("sleep 1", resources={"limits": {"ephemeral-storage": "1Gi"}}))
    with pytest.raises(
        BadRequest, match=r"limits\.ephemeral-storage: Forbidden: the docker runtime cannot enforce"
    ):
        rt.start_pod(storage, SANDBOX)
    assert rt.list_pods() == []
