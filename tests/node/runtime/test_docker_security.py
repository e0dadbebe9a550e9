"""Pod Security on Docker nodes, end to end: what a `baseline` namespace refuses never reaches the
daemon (a `hostPath: /` pod is Forbidden), and what it admits runs as its securityContext says:
runAsUser honoured, a write to a read-only root filesystem failing, capabilities dropped,
no_new_privs set, runAsNonRoot refused for a root image, hostNetwork in the node's namespace.

Marked `docker` (see tests/conftest.py); every test uses its own node name and removes its
containers in teardown.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nbkube.errors import BadRequest, Forbidden
from nbkube.node.runtime.base import PodSandboxConfig
from nbkube.node.runtime.docker import LABEL_NODE, DockerRuntime
from nbkube.node.runtime.images import seed_busybox
from nbkube.registry.admission_chain import default_admission_plugins
from nbkube.registry.registry import Registry
from nbkube.store import open_store

pytestmark = pytest.mark.docker

SANDBOX = PodSandboxConfig(node_name="n", pod_ip="10.244.1.2", pod_cidr="10.244.1.0/24", host_ip="10.240.0.2")


@pytest.fixture(scope="module")
def client(docker_client: Any) -> Any:
    seed_busybox(docker_client)
    return docker_client


@pytest.fixture
def rt(client: Any, tmp_path: Any) -> Iterator[DockerRuntime]:
    node = f"t{uuid.uuid4().hex[:8]}"
    runtime = DockerRuntime(
        client, node_name=node, state_dir=str(tmp_path / "state"), backoff_base=0.2, poll_interval=0.1
    )
    yield runtime
    runtime.close(remove=True)
    for c in client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={node}"}):
        c.remove(force=True)


@pytest.fixture
def api() -> Iterator[Registry]:
    reg = Registry(open_store("sqlite://:memory:"), admission=default_admission_plugins())
    reg.create(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team", "labels": {"pod-security.kubernetes.io/enforce": "baseline"}},
        }
    )
    yield reg
    reg.close()


def wait_for(fn: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout  # a real daemon gives no event to wait on here
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def pod(
    name: str,
    script: str,
    sc: dict[str, Any] | None = None,
    *,
    ns: str = "team",
    mounts: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "c", "image": "busybox", "command": ["sh", "-c", script]}
    if sc is not None:
        c["securityContext"] = sc
    if mounts:
        c["volumeMounts"] = [{"name": k, "mountPath": v} for k, v in mounts.items()]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [c], "restartPolicy": "Never", **spec},
    }


def run(rt: DockerRuntime, obj: dict[str, Any]) -> str:
    """Start `obj` (as admitted, with its uid) and return its output once it has finished."""
    uid = obj["metadata"]["uid"]
    rt.start_pod(obj, SANDBOX)

    def done() -> Any:
        st = rt.pod_status(uid)
        c = st.containers[0] if st else None
        if c is not None and c.state == "waiting" and c.reason not in ("", "ContainerCreating"):
            raise AssertionError(f"{c.reason}: {c.message}")
        return c is not None and c.state == "terminated"

    wait_for(done, f"pod {obj['metadata']['name']} to finish")
    return str(rt.logs(uid, "c"))


def test_baseline_refuses_the_host_root_and_the_admitted_pod_runs_confined(
    api: Registry, rt: DockerRuntime
) -> None:
    with pytest.raises(
        Forbidden, match=r'violates PodSecurity "baseline:latest": hostPath volumes \(volume "root"\)'
    ):
        api.create(
            pod(
                "escape",
                "echo owned > /host/tmp/nbkube-psa-escape",
                mounts={"root": "/host"},
                volumes=[{"name": "root", "hostPath": {"path": "/"}}],
            )
        )
    assert api.list("Pod", "team")[0] == []
    admitted = api.create(
        pod(
            "confined",
            "id -u; touch /rootfs-write 2>&1; echo rc=$?; touch /scratch/ok && echo scratch-ok",
            {"runAsUser": 65534, "readOnlyRootFilesystem": True},
            mounts={"scratch": "/scratch"},
            volumes=[{"name": "scratch", "emptyDir": {}}],
        )
    )
    out = run(rt, admitted).splitlines()
    assert out[0] == "65534"
    assert "Read-only file system" in out[1] and out[2] == "rc=1"
    assert out[3] == "scratch-ok"


def test_capabilities_and_no_new_privs(api: Registry, rt: DockerRuntime) -> None:
    sc = {"runAsUser": 1000, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    out = run(rt, api.create(pod("tight", "grep -E 'CapBnd|NoNewPrivs' /proc/self/status", sc))).split()
    assert out == ["NoNewPrivs:", "1", "CapBnd:", "0000000000000000"] or out == [
        "CapBnd:",
        "0000000000000000",
        "NoNewPrivs:",
        "1",
    ]
    out = run(
        rt,
        api.create(
            pod(
                "chown",
                "grep CapBnd /proc/self/status",
                {"capabilities": {"add": ["CHOWN"], "drop": ["ALL"]}},
            )
        ),
    ).split()
    assert out == ["CapBnd:", "0000000000000001"]  # CAP_CHOWN is bit 0


def test_run_as_non_root_refuses_a_root_image(api: Registry, rt: DockerRuntime) -> None:
    obj = api.create(pod("nonroot", "true", {"runAsNonRoot": True}))
    rt.start_pod(obj, SANDBOX)

    def reason() -> Any:
        st = rt.pod_status(obj["metadata"]["uid"])
        c = st.containers[0] if st else None
        return c is not None and c.reason == "CreateContainerConfigError" and c.message

    message = wait_for(reason, "CreateContainerConfigError")
    assert message == (
        "spec.containers[0].securityContext.runAsNonRoot: container has runAsNonRoot and image will run as root"
    )


def test_host_network_shares_the_nodes_namespace(client: Any, tmp_path: Any) -> None:
    reg = Registry(open_store("sqlite://:memory:"), admission=default_admission_plugins())
    node = f"t{uuid.uuid4().hex[:8]}"
    runtime = DockerRuntime(
        client, node_name=node, state_dir=str(tmp_path / "s"), backoff_base=0.2, poll_interval=0.1
    )
    try:
        obj = reg.create(pod("hostnet", "readlink /proc/self/ns/net", ns="default", hostNetwork=True))
        assert run(runtime, obj).strip() == os.readlink("/proc/self/ns/net")  # the host's, as dockerd's (pid 1 may be hidden)
        st = runtime.pod_status(obj["metadata"]["uid"])
        assert st is not None and st.pod_ip == SANDBOX.host_ip
    finally:
        runtime.close(remove=True)
        for c in client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={node}"}):
            c.remove(force=True)
        reg.close()


def test_host_network_on_a_namespaced_node_is_refused(client: Any, tmp_path: Any) -> None:
    class NamespacedNetwork:  # the only thing start_pod looks at before refusing
        netns = "nbk-node-9"

    runtime = DockerRuntime(
        client,
        node_name=f"t{uuid.uuid4().hex[:8]}",
        network=NamespacedNetwork(),
        state_dir=str(tmp_path / "s"),
    )
    try:
        obj = pod("hostnet", "true", hostNetwork=True)
        obj["metadata"]["uid"] = "u1"
        with pytest.raises(
            BadRequest, match="spec.hostNetwork: Forbidden: node .* lives in network namespace nbk-node-9"
        ):
            runtime.start_pod(obj, SANDBOX)
    finally:
        runtime.close(remove=True)
