"""The Docker runtime against a real dockerd: pods of real containers, their failures, adoption, down.

Marked `docker`: skipped (with the reason) unless we are root and a daemon answers; with
NBKUBE_REQUIRE_DOCKER=1 those conditions fail the test instead. Every test uses its own node name
and removes every container of it in teardown, even on failure. Waiting on a real daemon needs
polling; `wait_for` bounds it.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nbkube.node.network.base import NoNetwork
from nbkube.node.runtime.base import ContainerStatus, PodRuntimeStatus, PodSandboxConfig, Runtime
from nbkube.node.runtime.docker import LABEL_NODE, DockerRuntime
from nbkube.node.runtime.images import seed_busybox

pytestmark = pytest.mark.docker

SANDBOX = PodSandboxConfig(node_name="n", pod_ip="10.244.1.2", pod_cidr="10.244.1.0/24", host_ip="10.240.0.2")


@pytest.fixture(scope="module")
def client(docker_client: Any) -> Any:
    seed_busybox(docker_client)
    return docker_client


@pytest.fixture
def make_runtime(client: Any, tmp_path: Any) -> Iterator[Callable[..., DockerRuntime]]:
    node = f"t{uuid.uuid4().hex[:8]}"
    made: list[DockerRuntime] = []

    def make(**kw: Any) -> DockerRuntime:
        kw.setdefault("backoff_base", 0.2)
        kw.setdefault("poll_interval", 0.1)
        rt = DockerRuntime(client, node_name=node, state_dir=str(tmp_path / "state"), **kw)
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close(remove=True)  # also unmounts tmpfs emptyDirs
    for c in client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={node}"}):
        c.remove(force=True)


def wait_for(fn: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")


def pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}-{uuid.uuid4().hex[:6]}"},
        "spec": {"containers": containers, **spec},
    }


def uid(p: dict[str, Any]) -> str:
    return str(p["metadata"]["uid"])


def ctr(rt: DockerRuntime, p: dict[str, Any], name: str | None = None) -> ContainerStatus:
    st = rt.pod_status(uid(p))
    assert st is not None
    return next(c for c in st.containers if name is None or c.name == name)


def status(rt: DockerRuntime, p: dict[str, Any]) -> PodRuntimeStatus:
    st = rt.pod_status(uid(p))
    assert st is not None
    return st


WEB_POD_CONTAINERS = [
    {
        "name": "httpd",
        "image": "busybox",
        "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "volumeMounts": [{"name": "www", "mountPath": "/www"}],
        "readinessProbe": {"httpGet": {"port": "http", "path": "/"}, "periodSeconds": 1},
    },
    {
        "name": "writer",
        "image": "busybox",
        "command": ["sh", "-c", "echo hello > /www/index.html; echo wrote $(ME); sleep 3600"],
        "volumeMounts": [{"name": "www", "mountPath": "/www"}],
        "env": [
            {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "GREETING", "value": "hi-$(ME)"},
        ],
        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
    },
]


def test_is_a_runtime(make_runtime: Callable[..., DockerRuntime]) -> None:
    rt = make_runtime()
    assert isinstance(rt, Runtime)
    assert rt.name == "docker"


def test_two_containers_share_localhost_and_an_empty_dir(
    make_runtime: Callable[..., DockerRuntime], client: Any
) -> None:
    changed: list[str] = []
    rt = make_runtime(on_change=changed.append)
    p = pod("web", WEB_POD_CONTAINERS, volumes=[{"name": "www", "emptyDir": {}}])
    rt.start_pod(p, SANDBOX)
    rt.start_pod(p, SANDBOX)  # idempotent
    st = wait_for(lambda: (s := status(rt, p)).all_ready and s, what="pod ready")
    assert st.sandbox_ready and st.pod_ip
    code, out = rt.exec(uid(p), "writer", ["wget", "-qO-", "http://localhost:8080/"])
    assert (code, out) == (0, "hello\n")
    code, out = rt.exec(uid(p), "writer", ["sh", "-c", "hostname; echo $NS $IP $NODE $GREETING"])
    assert out.split() == ["web", "default", st.pod_ip, rt.node_name, "hi-web"]
    assert "wrote web" in str(rt.logs(uid(p), "writer"))
    follow = rt.logs(uid(p), "writer", tail=1, follow=True)
    assert not isinstance(follow, str)
    first = ""
    for chunk in follow:  # the writer prints one line and sleeps: it is there at once
        first += chunk
        if first.endswith("\n"):
            break
    follow.close()
    assert first == "wrote web\n"
    wait_for(lambda: uid(p) in changed, what="on_change")  # the agent hears of changes without polling
    # labels tie every container to node, pod and container; limits reached Docker
    w = client.containers.get(ctr(rt, p, "writer").container_id.removeprefix("docker://"))
    assert w.labels["io.nbkube.pod.uid"] == uid(p) and w.labels["io.nbkube.container"] == "writer"
    assert w.attrs["HostConfig"]["NanoCpus"] == 500_000_000
    assert w.attrs["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert len(client.containers.list(filters={"label": f"io.nbkube.pod.uid={uid(p)}"})) == 3  # + pause
    rt.stop_pod(uid(p))
    assert rt.pod_status(uid(p)) is None
    wait_for(
        # the low-level list: `containers.list` inspects each listed container, and one removed in
        # between raised NotFound out of the poll (a CI failure) instead of being gone
        lambda: not client.api.containers(all=True, filters={"label": f"io.nbkube.pod.uid={uid(p)}"}),
        what="pod containers removed",
    )


def test_missing_image_is_err_image_pull_with_the_daemon_message(
    make_runtime: Callable[..., DockerRuntime], client: Any
) -> None:
    import docker

    try:
        client.images.pull("nbkube-test/no-such-image", tag="1")
        pytest.skip("a registry is reachable here")
    except docker.errors.APIError as exc:
        daemon = str(exc.explanation)
    rt = make_runtime()
    bad = pod("bad", [{"name": "c", "image": "nbkube-test/no-such-image:1"}])
    good = pod("good", [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}])
    rt.start_pod(bad, SANDBOX)
    rt.start_pod(good, SANDBOX)
    c = wait_for(
        lambda: (x := ctr(rt, bad)).reason in ("ErrImagePull", "ImagePullBackOff") and x, what="pull error"
    )
    assert c.state == "waiting" and daemon in c.message
    wait_for(lambda: status(rt, good).all_running, what="the other pod runs")


def test_command_that_exits_at_once_crash_loops_with_growing_restarts(
    make_runtime: Callable[..., DockerRuntime],
) -> None:
    rt = make_runtime(backoff_base=0.1)
    p = pod("crash", [{"name": "c", "image": "busybox", "command": ["sh", "-c", "exit 3"]}])
    rt.start_pod(p, SANDBOX)
    c = wait_for(
        lambda: (x := ctr(rt, p)).restart_count >= 2 and x.reason == "CrashLoopBackOff" and x,
        what="crash loop",
    )
    assert c.last_terminated is not None and c.last_terminated["exitCode"] == 3
    assert c.last_terminated["reason"] == "Error"
    assert "back-off" in c.message
    st = status(rt, p)
    assert st.next_check is not None and st.next_check <= 300


def test_restart_policy_never_leaves_the_exit_code(make_runtime: Callable[..., DockerRuntime]) -> None:
    rt = make_runtime()
    failed = pod(
        "failed",
        [{"name": "c", "image": "busybox", "command": ["sh", "-c", "exit 4"]}],
        restartPolicy="Never",
    )
    done = pod("done", [{"name": "c", "image": "busybox", "command": ["true"]}], restartPolicy="OnFailure")
    rt.start_pod(failed, SANDBOX)
    rt.start_pod(done, SANDBOX)
    c = wait_for(lambda: (x := ctr(rt, failed)).state == "terminated" and x, what="failed")
    assert (c.reason, c.exit_code, c.restart_count) == ("Error", 4, 0)
    c = wait_for(lambda: (x := ctr(rt, done)).state == "terminated" and x, what="done")
    assert (c.reason, c.exit_code, c.restart_count) == ("Completed", 0, 0)


def test_memory_limit_exceeded_is_oom_killed(make_runtime: Callable[..., DockerRuntime]) -> None:
    rt = make_runtime()
    hog = "x=$(head -c 67108864 /dev/zero | tr '\\0' a); sleep 1"
    p = pod(
        "hog",
        [
            {
                "name": "c",
                "image": "busybox",
                "command": ["sh", "-c", hog],
                "resources": {"limits": {"memory": "16Mi"}},
            }
        ],
        restartPolicy="Never",
    )
    rt.start_pod(p, SANDBOX)
    c = wait_for(lambda: (x := ctr(rt, p)).state == "terminated" and x, what="oom")
    assert c.reason == "OOMKilled" and c.exit_code == 137


def test_bad_volumes_are_reported_and_other_pods_still_run(
    make_runtime: Callable[..., DockerRuntime], tmp_path: Any
) -> None:
    rt = make_runtime()
    missing = str(tmp_path / "no-such-dir")
    hp = pod(
        "hp",
        [
            {
                "name": "c",
                "image": "busybox",
                "command": ["sleep", "3600"],
                "volumeMounts": [{"name": "h", "mountPath": "/h"}],
            }
        ],
        volumes=[{"name": "h", "hostPath": {"path": missing}}],
    )
    unsupported = pod(
        "iscsi",
        [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}],
        volumes=[{"name": "disk", "iscsi": {"targetPortal": "10.0.0.1:3260", "iqn": "x", "lun": 0}}],
    )
    ok = pod("ok", [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}])
    for p in (hp, unsupported, ok):
        rt.start_pod(p, SANDBOX)
    c = wait_for(
        lambda: (x := ctr(rt, hp)).reason == "CreateContainerConfigError" and x, what="hostPath error"
    )
    assert missing in c.message and c.state == "waiting"
    c = wait_for(lambda: (x := ctr(rt, unsupported)).reason == "VolumeUnsupported" and x, what="unsupported")
    assert "iscsi" in c.message
    wait_for(lambda: status(rt, ok).all_running, what="the healthy pod runs")
    os.makedirs(missing)  # the path appears: the pod starts on a later retry
    wait_for(lambda: status(rt, hp).all_running, what="hostPath pod starts once the path exists")


def test_config_map_secret_and_git_repo_volumes(
    make_runtime: Callable[..., DockerRuntime], tmp_path: Any
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README").write_text("from git\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "-C", str(repo), "add", "README"], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "init"], check=True)

    def resolve(pod_obj: dict[str, Any], vol: dict[str, Any]) -> dict[str, bytes] | None:
        if "configMap" in vol and vol["configMap"]["name"] == "cfg":
            return {"app.conf": b"port=1\n"}
        if "secret" in vol and vol["secret"]["secretName"] == "pw":
            return {"password": b"s3cret"}
        return None

    rt = make_runtime(resolve_volume=resolve)
    mounts = [
        {"name": "cfg", "mountPath": "/cfg"},
        {"name": "pw", "mountPath": "/pw"},
        {"name": "src", "mountPath": "/src"},
        {"name": "mem", "mountPath": "/mem"},
    ]
    p = pod(
        "vols",
        [{"name": "c", "image": "busybox", "command": ["sleep", "3600"], "volumeMounts": mounts}],
        volumes=[
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "pw", "secret": {"secretName": "pw"}},
            {"name": "src", "gitRepo": {"repository": str(repo), "directory": "code"}},
            {"name": "mem", "emptyDir": {"medium": "Memory"}},
        ],
    )
    rt.start_pod(p, SANDBOX)
    wait_for(lambda: status(rt, p).all_running, what="pod with volumes runs")
    _, out = rt.exec(
        uid(p),
        "c",
        ["sh", "-c", "cat /cfg/app.conf /pw/password /src/code/README; echo; grep ' /mem ' /proc/mounts"],
    )
    assert out.splitlines()[:2] == ["port=1", "s3cretfrom git"]
    assert "tmpfs" in out
    code, _ = rt.exec(uid(p), "c", ["sh", "-c", "echo x > /cfg/new"])
    assert code != 0  # configMap files are read-only

    missing = pod(
        "nocm",
        [{"name": "c", "image": "busybox", "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
        volumes=[{"name": "v", "configMap": {"name": "absent"}}],
    )
    rt.start_pod(missing, SANDBOX)
    c = wait_for(
        lambda: (x := ctr(rt, missing)).reason == "CreateContainerConfigError" and x, what="cm missing"
    )
    assert "absent" in c.message


def test_probes_readiness_and_liveness(make_runtime: Callable[..., DockerRuntime]) -> None:
    rt = make_runtime(backoff_base=0.1)
    p = pod(
        "probed",
        [
            {
                "name": "never-ready",
                "image": "busybox",
                "command": ["sleep", "3600"],
                "readinessProbe": {"tcpSocket": {"port": 9999}, "periodSeconds": 1},
            },
            {
                "name": "dies",
                "image": "busybox",
                "command": ["sleep", "3600"],
                "livenessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1},
            },
        ],
    )
    rt.start_pod(p, SANDBOX)
    wait_for(lambda: ctr(rt, p, "dies").restart_count >= 1, what="liveness restart")
    c = ctr(rt, p, "never-ready")
    assert c.state == "running" and not c.ready and c.restart_count == 0


def test_a_new_runtime_adopts_running_pods_without_restarting_them(
    make_runtime: Callable[..., DockerRuntime], client: Any
) -> None:
    rt = make_runtime(backoff_base=0.1)
    p = pod("web", WEB_POD_CONTAINERS, volumes=[{"name": "www", "emptyDir": {}}])
    crash = pod("crash", [{"name": "c", "image": "busybox", "command": ["sh", "-c", "exit 1"]}])
    rt.start_pod(p, SANDBOX)
    rt.start_pod(crash, SANDBOX)
    before = wait_for(lambda: (s := status(rt, p)).all_ready and s, what="web ready")
    wait_for(lambda: ctr(rt, crash).restart_count >= 2, what="crash restarts")
    rt.close()
    started = {
        c.container_id: client.api.inspect_container(c.container_id.removeprefix("docker://"))["State"][
            "StartedAt"
        ]
        for c in before.containers
    }
    crash_count = ctr(rt, crash).restart_count

    rt2 = make_runtime(backoff_base=0.1)
    after = status(rt2, p)
    assert after.pod_ip == before.pod_ip and after.sandbox_ready
    assert after.all_ready  # probed during adoption: Ready does not flap
    assert [(c.name, c.container_id, c.state, c.restart_count) for c in after.containers] == [
        (c.name, c.container_id, "running", 0) for c in before.containers
    ]
    wait_for(lambda: status(rt2, p).all_ready, what="adopted pod ready again")
    for cid, at in started.items():
        assert client.api.inspect_container(cid.removeprefix("docker://"))["State"]["StartedAt"] == at
    assert ctr(rt2, crash).restart_count >= crash_count
    assert {s.uid for s in rt2.list_pods()} == {uid(p), uid(crash)}
    assert rt2.exec(uid(p), "writer", ["wget", "-qO-", "http://localhost:8080/"]) == (0, "hello\n")


def test_remove_all_leaves_no_container_of_the_node(
    make_runtime: Callable[..., DockerRuntime], client: Any
) -> None:
    rt = make_runtime()
    pods = [pod(f"p{i}", [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]) for i in range(2)]
    for p in pods:
        rt.start_pod(p, SANDBOX)
    wait_for(lambda: all(status(rt, p).all_running for p in pods), what="pods running")
    rt.close(remove=True)
    assert rt.list_pods() == []
    assert client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={rt.node_name}"}) == []
    assert not os.listdir(os.path.join(rt.state_dir, "pods"))


class _RecordingNetwork(NoNetwork):
    def __init__(self) -> None:
        super().__init__(index=7)
        self.attached: dict[str, str | int] = {}
        self.detached: list[str] = []

    def attach_pod(self, pod_uid: str, netns: str | int, ifname: str = "eth0") -> str:
        self.attached[pod_uid] = netns
        return super().attach_pod(pod_uid, netns, ifname)

    def detach_pod(self, pod_uid: str) -> None:
        self.detached.append(pod_uid)
        super().detach_pod(pod_uid)


def test_a_pod_network_gets_the_sandbox_pid_and_gives_the_ip(
    make_runtime: Callable[..., DockerRuntime], client: Any
) -> None:
    net = _RecordingNetwork()
    rt = make_runtime(network=net)
    p = pod("netted", [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}])
    rt.start_pod(p, SANDBOX)
    st = wait_for(lambda: (s := status(rt, p)).all_running and s, what="pod running")
    assert st.pod_ip == net.pods[uid(p)] and st.pod_ip.startswith("10.244.7.")
    pause = client.containers.list(
        filters={"label": [f"io.nbkube.pod.uid={uid(p)}", "io.nbkube.container=POD"]}
    )[0]
    assert net.attached[uid(p)] == pause.attrs["State"]["Pid"]
    assert pause.attrs["HostConfig"]["NetworkMode"] == "none"
    rt.stop_pod(uid(p))
    wait_for(lambda: net.detached == [uid(p)], what="detach on stop")


@pytest.mark.skipif(
    shutil.which("ip") is None or shutil.which("nsenter") is None, reason="needs iproute2 and nsenter"
)
def test_on_a_bridge_network_probes_run_in_the_pod_netns(
    make_runtime: Callable[..., DockerRuntime], tmp_path: Any
) -> None:
    from nbkube.node.network.bridge import BridgeNetwork

    net = BridgeNetwork(f"dk{uuid.uuid4().hex[:6]}", 251, tmp_path / "net")
    try:
        info = net.setup_node()
        rt = make_runtime(network=net)
        container = {
            "name": "web",
            "image": "busybox",
            "command": ["httpd", "-f", "-p", "8080", "-h", "/etc"],
            "readinessProbe": {"httpGet": {"port": 8080, "path": "/passwd"}},
            "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 1},
        }
        p = pod("bridged", [container])
        rt.start_pod(p, PodSandboxConfig(net.node_name, "", info.pod_cidr, info.node_ip))
        st = wait_for(lambda: (s := status(rt, p)).all_ready and s, what="ready on the bridge")
        assert ipaddress.ip_address(st.pod_ip) in ipaddress.ip_network(info.pod_cidr)
        code, out = rt.exec(uid(p), "web", ["sh", "-c", "ip -4 addr show eth0"])
        assert code == 0 and st.pod_ip in out
        rt.close(remove=True)
    finally:
        net.teardown()


def test_init_containers_run_in_order_before_the_app(make_runtime: Callable[..., DockerRuntime]) -> None:
    rt = make_runtime()
    mount = [{"name": "work", "mountPath": "/work"}]
    p = pod(
        "inits",
        [{"name": "app", "image": "busybox", "command": ["sleep", "3600"], "volumeMounts": mount}],
        initContainers=[
            {
                "name": "one",
                "image": "busybox",
                "command": ["sh", "-c", "echo one >> /work/log"],
                "volumeMounts": mount,
            },
            {
                "name": "two",
                "image": "busybox",
                "command": ["sh", "-c", "echo two >> /work/log"],
                "volumeMounts": mount,
            },
        ],
        volumes=[{"name": "work", "emptyDir": {}}],
    )
    rt.start_pod(p, SANDBOX)
    wait_for(lambda: status(rt, p).all_running, what="app after init containers")
    assert rt.exec(uid(p), "app", ["cat", "/work/log"]) == (0, "one\ntwo\n")

    failing = pod(
        "badinit",
        [{"name": "app", "image": "busybox", "command": ["sleep", "3600"]}],
        initContainers=[{"name": "fails", "image": "busybox", "command": ["sh", "-c", "exit 2"]}],
        restartPolicy="Never",
    )
    rt.start_pod(failing, SANDBOX)
    c = wait_for(lambda: (x := ctr(rt, failing)).state == "terminated" and x, what="init failure")
    assert (c.reason, c.exit_code) == ("Init:Error", 2) and "fails" in c.message


def test_nfs_that_cannot_be_mounted_is_reported(make_runtime: Callable[..., DockerRuntime]) -> None:
    rt = make_runtime()
    p = pod(
        "nfs",
        [{"name": "c", "image": "busybox", "volumeMounts": [{"name": "share", "mountPath": "/share"}]}],
        volumes=[{"name": "share", "nfs": {"server": "127.0.0.1", "path": "/nbkube-test-none"}}],
    )
    rt.start_pod(p, SANDBOX)
    c = wait_for(
        lambda: (x := ctr(rt, p)).reason in ("VolumeUnsupported", "CreateContainerConfigError") and x
    )
    assert "nfs" in c.message and c.state == "waiting"
