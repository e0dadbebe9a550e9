"""The process runtime and securityContext: ids switched when it runs as root, no_new_privs set,
runAsNonRoot checked against the uid it would use, hostNetwork's address reported, and every field
it cannot honour refused at start_pod with the field and the runtime named."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nbkube.errors import BadRequest
from nbkube.node.runtime.base import PodSandboxConfig
from nbkube.node.runtime.process import ProcessRuntime, find_busybox
from nbkube.node.runtime.security import process_refusals

pytestmark = pytest.mark.skipif(find_busybox() is None, reason="needs the host's busybox (busybox-static)")
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching uid needs root")

SANDBOX = PodSandboxConfig(
    node_name="node-1", pod_ip="127.244.1.2", pod_cidr="127.244.1.0/24", host_ip="127.240.0.2"
)


def pod(uid: str, script: str, sc: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", "image": "busybox", "command": ["sh", "-c", script]}
    if sc is not None:
        container["securityContext"] = sc
    return {
        "metadata": {"name": f"pod-{uid}", "namespace": "default", "uid": uid},
        "spec": {"containers": [container], "restartPolicy": "Never", **spec},
    }


def wait_for(fn: Callable[[], Any], what: str, timeout: float = 8.0) -> Any:
    deadline = time.monotonic() + timeout  # bounded polling: real processes give no event to wait on
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def finished_log(rt: ProcessRuntime, uid: str) -> str:
    def done() -> bool:
        st = rt.pod_status(uid)
        return st is not None and st.containers[0].state == "terminated"

    wait_for(done, f"pod {uid} to finish")
    return str(rt.logs(uid, "c"))


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder any uid may traverse (pytest's tmp_path is closed to others)."""
    path = Path(tempfile.mkdtemp(prefix="nbk-psa-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def rt(open_dir: Path) -> Iterator[ProcessRuntime]:
    runtime = ProcessRuntime(str(open_dir / "state"), backoff_base=0.1, stop_grace_cap=1.0)
    try:
        yield runtime
    finally:
        runtime.close()


@as_root
def test_a_volume_the_uid_cannot_reach_is_said_so(tmp_path: Path) -> None:
    runtime = ProcessRuntime(str(tmp_path / "state"), backoff_base=0.1, stop_grace_cap=1.0)
    try:
        runtime.start_pod(
            pod("far", "true", {"runAsUser": 65534}, volumes=[{"name": "v", "emptyDir": {}}]), SANDBOX
        )
        st = wait_for(
            lambda: (s := runtime.pod_status("far")) and s.containers[0].reason != "ContainerCreating" and s,
            "a reason",
        )
        assert st.containers[0].reason == "CreateContainerConfigError"
        assert st.containers[0].message.startswith(
            "container c: volume v cannot be reached by uid 65534: folder "
        )
        assert "is closed to it" in st.containers[0].message
    finally:
        runtime.close()


@as_root
def test_run_as_user_group_and_groups_are_honoured(rt: ProcessRuntime) -> None:
    rt.start_pod(
        pod(
            "ids",
            "id -u; id -g; id -G; sleep 30",
            {"runAsUser": 65534},
            securityContext={"runAsGroup": 65534, "supplementalGroups": [1234], "fsGroup": 2345},
            volumes=[{"name": "scratch", "emptyDir": {}}],
        ),
        SANDBOX,
    )
    wait_for(lambda: len(str(rt.logs("ids", "c")).splitlines()) >= 3, "the ids in the log")
    assert str(rt.logs("ids", "c")).splitlines()[:3] == ["65534", "65534", "65534 1234 2345"]
    code, out = rt.exec("ids", "c", ["id", "-u"])  # exec (and probes) run as the container does
    assert (code, out) == (0, "65534\n")
    code, out = rt.exec(
        "ids", "c", ["sh", "-c", "touch $NBKUBE_VOLUME_SCRATCH/f && stat -c %g $NBKUBE_VOLUME_SCRATCH"]
    )
    assert (code, out) == (0, "2345\n")  # the emptyDir is writable and belongs to fsGroup


@as_root
def test_without_run_as_user_it_runs_as_the_runtimes_user(rt: ProcessRuntime) -> None:
    rt.start_pod(pod("root", "id -u"), SANDBOX)
    assert finished_log(rt, "root").strip() == "0"


def test_allow_privilege_escalation_false_sets_no_new_privs(rt: ProcessRuntime) -> None:
    rt.start_pod(
        pod("nnp", "grep NoNewPrivs /proc/self/status", {"allowPrivilegeEscalation": False}), SANDBOX
    )
    assert finished_log(rt, "nnp").split() == ["NoNewPrivs:", "1"]
    rt.start_pod(pod("plain", "grep NoNewPrivs /proc/self/status"), SANDBOX)
    assert finished_log(rt, "plain").split() == ["NoNewPrivs:", "0"]


def test_host_network_reports_the_nodes_address(rt: ProcessRuntime) -> None:
    spec = pod("hn", "echo $(POD_IP)", hostNetwork=True)
    spec["spec"]["containers"][0]["env"] = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    ]
    rt.start_pod(spec, SANDBOX)
    assert finished_log(rt, "hn").strip() == "127.240.0.2"
    st = rt.pod_status("hn")
    assert st is not None and st.pod_ip == "127.240.0.2"


@pytest.mark.parametrize(
    "sc, spec, message",
    [
        (
            {"privileged": True},
            {},
            "spec.containers[0].securityContext.privileged: Forbidden: the process runtime cannot run privileged containers",
        ),
        (
            {"capabilities": {"add": ["NET_ADMIN"]}},
            {},
            "spec.containers[0].securityContext.capabilities.add: Forbidden: the process runtime cannot add capabilities",
        ),
        (
            {"readOnlyRootFilesystem": True},
            {},
            "spec.containers[0].securityContext.readOnlyRootFilesystem: Forbidden: the process runtime cannot make the root filesystem read-only",
        ),
        (
            {"seccompProfile": {"type": "RuntimeDefault"}},
            {},
            "spec.containers[0].securityContext.seccompProfile.type: Forbidden: the process runtime cannot apply seccompProfile 'RuntimeDefault'",
        ),
        (
            None,
            {"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]}},
            "spec.securityContext.sysctls: Forbidden: the process runtime cannot set sysctls",
        ),
        (
            {"seLinuxOptions": {"type": "container_t"}},
            {},
            "spec.containers[0].securityContext.seLinuxOptions: Forbidden: the process runtime cannot apply SELinux labels",
        ),
    ],
)
def test_what_it_cannot_do_is_refused_with_the_field(
    rt: ProcessRuntime, sc: dict[str, Any] | None, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadRequest) as err:
        rt.start_pod(pod("no", "true", sc, **spec), SANDBOX)
    assert str(err.value).startswith("pod default/pod-no: ")
    assert message in str(err.value)
    assert rt.pod_status("no") is None  # nothing was started


@as_root
def test_run_as_non_root_is_checked_against_the_uid_it_would_use(rt: ProcessRuntime) -> None:
    with pytest.raises(
        BadRequest,
        match=r"runAsNonRoot: Forbidden: container has runAsNonRoot and image will run as root \(the process runtime would run it as uid 0\)",
    ):
        rt.start_pod(pod("nr", "true", {"runAsNonRoot": True}), SANDBOX)
    with pytest.raises(
        BadRequest,
        match="capabilities.drop: Forbidden: the process runtime cannot drop capabilities of a process running as root",
    ):
        rt.start_pod(pod("drop", "true", {"capabilities": {"drop": ["ALL"]}}), SANDBOX)
    restricted = {
        "runAsNonRoot": True,
        "runAsUser": 65534,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    rt.start_pod(pod("ok", "id -u; grep CapEff /proc/self/status", restricted), SANDBOX)
    assert finished_log(rt, "ok").split() == ["65534", "CapEff:", "0000000000000000"]


def test_an_unprivileged_runtime_refuses_other_ids_but_runs_as_itself() -> None:
    def refusals(sc: dict[str, Any], **spec: Any) -> list[str]:
        return process_refusals(pod("u", "true", sc, **spec), euid=1000, egid=1000)

    assert refusals({"runAsUser": 65534}) == [
        "spec.containers[0].securityContext.runAsUser: Forbidden: the process runtime runs as uid 1000 "
        "and can switch users only as root (asked for 65534)"
    ]
    assert refusals({}, securityContext={"runAsGroup": 5}) == [
        "spec.containers[0].securityContext.runAsGroup: Forbidden: the process runtime runs as uid 1000 "
        "and can switch users only as root (asked for group 5)"
    ]
    assert refusals({"runAsUser": 1000, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}) == []
    assert refusals({"runAsNonRoot": True}) == []  # it will run as uid 1000
    assert refusals({"runAsUser": 0, "runAsNonRoot": True})[1] == (
        "spec.containers[0].securityContext.runAsNonRoot: Forbidden: container's runAsUser breaks non-root "
        "policy (the process runtime would run it as uid 0)"
    )
