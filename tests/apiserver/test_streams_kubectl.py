"""kubectl exec, cp, attach, run -i --rm, logs -f and the Python client's exec and port-forward
against a served LocalCluster(nodes=1, runtime="process") with busybox pods.

One cluster for the module (starting one takes seconds); every kubectl call is bounded by a
subprocess timeout and every wait is a bounded poll.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from nbk_apitest import KUBECTL, Kubectl, connect, tls
from nbk_clustertest import get_or_empty, httpd_pod, pod_ready, wait_until

from nbkube.apiserver import ApiServer, serve
from nbkube.clock import parse_rfc3339, rfc3339
from nbkube.cluster import LocalCluster

pytestmark = pytest.mark.slow

NODE = "node-1"


def _pod(name: str, script: str, **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": NODE,
            "restartPolicy": container.pop("restartPolicy", "Always"),
            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", script], **container}],
        },
    }


class Env:
    def __init__(self, cluster: LocalCluster, server: ApiServer, kubectl: Kubectl, folder: str):
        self.cluster, self.server, self.kubectl, self.folder = cluster, server, kubectl, folder

    def start(self, pod: dict[str, Any], phase: str = "") -> None:
        self.cluster.api.create(pod)
        name = pod["metadata"]["name"]

        def ready() -> bool:
            p = self.cluster.api.get("Pod", name, "default")
            return (p.get("status") or {}).get("phase") == phase if phase else pod_ready(p)

        wait_until(ready, 30, f"pod {name} {phase or 'ready'}")


def python_exec(env: Env, command: list[str], *, stdin: bool = False, tty: bool = False) -> Any:
    """An exec in `box` through the official Python client's WebSocket stream (stdout, and stderr
    unless `tty`), handed back unread."""
    from kubernetes import client, config
    from kubernetes.stream import stream

    config.load_kube_config(env.kubectl.kubeconfig)
    return stream(
        client.CoreV1Api().connect_get_namespaced_pod_exec,
        "box",
        "default",
        command=command,
        stderr=not tty,
        stdin=stdin,
        stdout=True,
        tty=tty,
        _preload_content=False,
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: Any) -> Iterator[Env]:
    assert KUBECTL is not None, "kubectl is not installed: these tests need the real kubectl (>= 1.30)"
    folder = str(tmp_path_factory.mktemp("streams"))
    with LocalCluster(
        nodes=1, runtime="process", store="sqlite", data_dir=folder + "/c", name="streams"
    ) as c:
        srv = serve(c)
        try:
            home = os.path.join(folder, "home")
            os.mkdir(home)
            e = Env(c, srv, Kubectl(srv.write_kubeconfig(folder + "/kubeconfig"), home), folder)
            e.start(_pod("box", "echo started; exec sleep 3600"))
            yield e
        finally:
            srv.stop()


def test_exec_stdout_and_stderr_apart(env: Env) -> None:
    assert env.kubectl.ok("exec", "box", "--", "echo", "hi") == "hi\n"
    proc = env.kubectl("exec", "box", "--", "sh", "-c", "echo out; echo err >&2")
    assert proc.returncode == 0 and proc.stdout == "out\n" and "err\n" in proc.stderr


def test_exec_runs_in_the_containers_folder_with_its_environment(env: Env) -> None:
    out = env.kubectl.ok("exec", "box", "--", "sh", "-c", "pwd; echo $HOSTNAME")
    folder, host = out.split()
    assert folder.endswith("/containers/c") and host == "box"


def test_exec_exit_code_is_kubectls(env: Env) -> None:
    proc = env.kubectl("exec", "box", "--", "sh", "-c", "exit 3")
    assert proc.returncode == 3, proc.stderr
    assert "command terminated with exit code 3" in proc.stderr


def test_the_first_message_of_a_v5_exec_is_held_for_kubectls_streams(env: Env) -> None:
    """client-go (v5) drops a message that comes before it has made its streams (see
    wsstreams.py): output of a command that prints at once waits out the hold after the upgrade,
    and all of it arrives, in order, Status last. Measured from the client's side of the upgrade:
    a lower bound the server's own sleep guarantees, less the 101's way to the client. The client
    names itself as kubectl does (kubectl 1.32's own User-Agent); which clients are held is
    tested in test_wsstreams.py."""
    import asyncio

    import aiohttp

    from nbkube.apiserver.wsstreams import FIRST_MESSAGE_HOLD

    async def exec_at_once() -> tuple[float, list[bytes]]:
        url = (
            f"https://127.0.0.1:{env.server.port}/api/v1/namespaces/default/pods/box/exec"
            "?command=echo&command=at-once&stdout=true&stderr=true"
        )
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                url,
                protocols=("v5.channel.k8s.io",),
                ssl=tls(env.server),
                headers={"User-Agent": "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07"},
            ) as ws,
        ):
            upgraded = time.monotonic()
            first = 0.0
            messages: list[bytes] = []
            async for msg in ws:
                first = first or time.monotonic() - upgraded
                messages.append(msg.data)
            return first, messages

    first, messages = asyncio.run(asyncio.wait_for(exec_at_once(), 30))
    assert messages[0] == b"\x01at-once\n"
    assert messages[-1][:1] == b"\x03" and json.loads(messages[-1][1:])["status"] == "Success"
    assert first >= FIRST_MESSAGE_HOLD / 2


def test_exec_stdin(env: Env) -> None:
    assert env.kubectl.ok("exec", "-i", "box", "--", "cat", stdin="hello\nworld\n") == "hello\nworld\n"
    assert env.kubectl.ok("exec", "-i", "box", "--", "wc", "-l", stdin="a\nb\nc\n").strip() == "3"


def test_exec_with_a_terminal_and_resize(env: Env) -> None:
    ws = python_exec(env, ["sh", "-c", "read x; stty size; test -t 0"], stdin=True, tty=True)
    ws.write_channel(4, json.dumps({"Width": 100, "Height": 40}))
    ws.write_stdin("go\n")
    ws.run_forever(timeout=10)
    assert "40 100" in ws.read_stdout() and ws.returncode == 0


def test_cp_both_ways(env: Env) -> None:
    src = os.path.join(env.folder, "up.txt")
    with open(src, "w") as f:
        f.write("up and down\n" * 1000)
    env.kubectl.ok("cp", src, "box:/tmp/nbk-streams-up.txt")
    assert env.kubectl.ok("exec", "box", "--", "wc", "-l", "/tmp/nbk-streams-up.txt").split()[0] == "1000"
    back = os.path.join(env.folder, "down.txt")
    env.kubectl.ok("cp", "box:/tmp/nbk-streams-up.txt", back)
    with open(back) as f, open(src) as g:
        assert f.read() == g.read()
    env.kubectl.ok("exec", "box", "--", "rm", "/tmp/nbk-streams-up.txt")


def test_exec_errors_before_the_upgrade(env: Env) -> None:
    proc = env.kubectl("exec", "box", "-c", "nope", "--", "true")
    assert proc.returncode == 1 and "container nope is not valid for pod box" in proc.stderr
    env.start(_pod("done", "true", restartPolicy="Never"), phase="Succeeded")
    conn = connect(env.server)
    conn.request(
        "GET",
        "/api/v1/namespaces/default/pods/done/exec?command=true&stdout=true",
        headers=_ws("v5.channel.k8s.io"),
    )
    resp = conn.getresponse()
    assert resp.status == 400 and b"completed pod; current phase is Succeeded" in resp.read()
    conn.close()


def _ws(protocol: str) -> dict[str, str]:
    return {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Protocol": protocol,
    }


def test_unknown_channel_protocol_is_400_naming_the_supported(env: Env) -> None:
    for path, supported in (
        (
            "/api/v1/namespaces/default/pods/box/exec?command=true&stdout=true",
            "v5.channel.k8s.io, v4.channel.k8s.io",
        ),
        ("/api/v1/namespaces/default/pods/box/portforward?ports=80", "v4.channel.k8s.io"),
    ):
        conn = connect(env.server)
        conn.request("GET", path, headers=_ws("base64.channel.k8s.io"))
        resp = conn.getresponse()
        body = resp.read().decode()
        conn.close()
        assert resp.status == 400 and "base64.channel.k8s.io" in body and supported in body, body


def test_kubectl_port_forward(env: Env) -> None:
    # the default kubectl: SPDY/3.1 tunnelled in a WebSocket (other versions: test_spdy_kubectl.py)
    env.start(httpd_pod("web3", NODE, 8082))
    ip = env.cluster.api.get("Pod", "web3", "default")["status"]["podIP"]
    wait_until(lambda: get_or_empty(f"http://{ip}:8082/") == "web3", 30, "web3 answering")
    assert KUBECTL is not None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        local = s.getsockname()[1]
    proc = subprocess.Popen(
        [KUBECTL, "--kubeconfig", env.kubectl.kubeconfig, "port-forward", "web3", f"{local}:8082"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env.kubectl.env,
    )
    timer = threading.Timer(30, proc.kill)  # bounds the readline below
    timer.start()
    try:
        assert proc.stdout is not None and f":{local} -> 8082" in proc.stdout.readline()
        with socket.create_connection(("127.0.0.1", local), timeout=10) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
        assert data.startswith(b"HTTP/1.") and data.endswith(b"\r\n\r\nweb3\n"), data
    finally:
        timer.cancel()
        proc.kill()
        proc.wait(10)


def test_attach_to_a_main_process_with_stdin(env: Env) -> None:
    env.start(_pod("reader", "while read l; do echo got $l; done", stdin=True, stdinOnce=True))
    out = env.kubectl.ok("attach", "-i", "reader", stdin="one\ntwo\n")
    assert out == "got one\ngot two\n"
    proc = env.kubectl("attach", "-i", "box", stdin="x\n")
    assert proc.returncode != 0 and "stdin: true" in proc.stderr


def test_run_interactive_and_removed(env: Env) -> None:
    out = env.kubectl.ok(
        "run",
        "-i",
        "--rm",
        "--image=busybox",
        "--restart=Never",
        "once",
        "--",
        "sh",
        "-c",
        "read x; echo hello $x",
        stdin="world\n",
        timeout=60,
    )
    assert "hello world\n" in out and 'pod "once" deleted' in out
    assert not [p for p in env.cluster.api.list("Pod", "default")[0] if p["metadata"]["name"] == "once"]


def test_logs_follow_survives_silence(env: Env) -> None:
    env.start(_pod("talker", "echo first; sleep 10; echo second; sleep 3600"))
    assert KUBECTL is not None
    proc = subprocess.Popen(
        [KUBECTL, "--kubeconfig", env.kubectl.kubeconfig, "logs", "-f", "talker"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env.kubectl.env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "first\n"
        assert proc.stdout.readline() == "second\n"  # after 10 s of nothing
    finally:
        proc.kill()
        proc.wait(10)
    env.cluster.api.delete("Pod", "talker", "default")


def test_client_gone_mid_stream_leaves_no_process(env: Env) -> None:
    assert KUBECTL is not None
    proc = subprocess.Popen(
        [
            KUBECTL,
            "--kubeconfig",
            env.kubectl.kubeconfig,
            "exec",
            "box",
            "--",
            "sh",
            "-c",
            "echo $$; exec sleep 300",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env.kubectl.env,
    )
    assert proc.stdout is not None
    pid = int(proc.stdout.readline())
    assert os.path.exists(f"/proc/{pid}")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    wait_until(lambda: not _alive(pid), 10, f"exec'd process {pid} gone after its client went away")
    wait_until(lambda: not _stream_threads(), 10, "the agent's stream threads gone")
    wait_until(lambda: _agent_connections(env) == 0, 10, "no connection left to the agent")


_STREAM_THREADS = ("agent-stream-in", "nbkube-session-out", "agent-portforward")


def _stream_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in _STREAM_THREADS]


def _agent_connections(env: Env) -> int:
    """Established TCP connections to the node agent's port (the API server's relays)."""
    node = env.cluster.api.get("Node", NODE)
    port = int(node["metadata"]["annotations"]["nbkube.io/agent-endpoint"].rsplit(":", 1)[1])
    count = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[2].split(":")[1], 16) == port and fields[3] == "01":  # remote = agent, ESTABLISHED
                count += 1
    return count


_FORWARDER = """
import sys, time
from kubernetes import client, config
from kubernetes.stream import portforward
config.load_kube_config(sys.argv[1])
pf = portforward(client.CoreV1Api().connect_get_namespaced_pod_portforward, "web2", "default", ports="8081")
pf.socket(8081).sendall(b"GET / HTTP/1.0\\r\\n")  # a request left unfinished
print("open", flush=True)
time.sleep(300)
"""


def test_port_forward_client_gone_leaves_nothing(env: Env) -> None:
    env.start(httpd_pod("web2", NODE, 8081))
    proc = subprocess.Popen(
        [sys.executable, "-c", _FORWARDER, env.kubectl.kubeconfig], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "open\n"
        wait_until(lambda: _stream_threads() and _agent_connections(env), 10, "the forward open at the agent")
    finally:
        proc.kill()  # the client goes away without a close message
        proc.wait(10)
    wait_until(lambda: not _stream_threads(), 10, "the agent's port-forward threads gone")
    wait_until(lambda: _agent_connections(env) == 0, 10, "no connection left to the agent")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or between open and read
        return False


def test_python_client_exec_and_portforward(env: Env) -> None:
    from kubernetes import client, config
    from kubernetes.stream import portforward, stream

    env.start(httpd_pod("web", NODE, 8080))
    ip = env.cluster.api.get("Pod", "web", "default")["status"]["podIP"]
    wait_until(lambda: get_or_empty(f"http://{ip}:8080/") == "web", 30, "web answering")  # running is not listening
    config.load_kube_config(env.kubectl.kubeconfig)
    api = client.CoreV1Api()
    out = stream(
        api.connect_get_namespaced_pod_exec,
        "box",
        "default",
        command=["echo", "py"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert out == "py\n"
    ws = python_exec(env, ["sh", "-c", "exit 5"])
    ws.run_forever(timeout=10)
    assert ws.returncode == 5
    pf = portforward(api.connect_get_namespaced_pod_portforward, "web", "default", ports="8080")
    sock = pf.socket(8080)
    sock.setblocking(True)
    sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"HTTP/1.") and data.endswith(b"\r\n\r\nweb\n"), data
    assert pf.error(8080) is None


def test_logs_options(env: Env) -> None:
    env.start(_pod("counter", "for i in 1 2 3 4 5; do echo line$i; done; exec sleep 3600"))
    wait_until(lambda: "line5" in env.kubectl.ok("logs", "counter"), 10, "five lines")
    assert env.kubectl.ok("logs", "counter", "--tail=2") == "line4\nline5\n"
    assert env.kubectl.ok("logs", "counter", "--limit-bytes=8") == "line1\nli"
    assert env.kubectl.ok("logs", "counter", "-c", "c", "--tail=1") == "line5\n"
    stamped = env.kubectl.ok("logs", "counter", "--timestamps", "--tail=1")
    stamp, line = stamped.split(" ")
    assert line == "line5\n" and abs(parse_rfc3339(stamp.replace("000Z", "Z")) - time.time()) < 60
    assert env.kubectl.ok("logs", "counter", "--since=1h").count("line") == 5
    later = rfc3339(time.time() + 1)  # after every line was noted (whole seconds: one ahead)
    assert env.kubectl.ok("logs", "counter", f"--since-time={later}") == ""
    proc = env.kubectl("logs", "counter", "--previous")
    assert (
        proc.returncode == 1 and 'previous terminated container "c" in pod "counter" not found' in proc.stderr
    )


def test_logs_previous_after_a_restart(env: Env) -> None:
    env.start(_pod("crasher", "echo run at $(date +%s%N); sleep 0.2; exit 1"), phase="Running")
    pod = wait_until(
        lambda: (lambda p: p if p["status"]["containerStatuses"][0]["restartCount"] >= 1 else None)(
            env.cluster.api.get("Pod", "crasher", "default")
        ),
        30,
        "a restart",
    )
    assert pod
    previous = env.kubectl.ok("logs", "crasher", "--previous")
    assert previous.count("run at") == 1
    env.cluster.api.delete("Pod", "crasher", "default")


def _ws_call(
    env: Env, path: str, protocol: str, user: str = "admin", groups: tuple[str, ...] = ("system:masters",)
) -> Any:
    """A WebSocket to `path` with websocket-client (a plain client: one subprotocol, no retries)."""
    import ssl

    import websocket
    from nbk_apitest import tls

    ctx = tls(env.server, user, groups)
    return websocket.create_connection(
        f"wss://127.0.0.1:{env.server.port}{path}",
        subprotocols=[protocol],
        sslopt={"context": ctx, "cert_reqs": ssl.CERT_REQUIRED},
        timeout=10,
    )


def test_v4_exec_ends_with_upstreams_exit_status(env: Env) -> None:
    ws = _ws_call(
        env,
        "/api/v1/namespaces/default/pods/box/exec?command=sh&command=-c&command=echo+x;exit+7&stdout=true&stderr=true",
        "v4.channel.k8s.io",
    )
    assert ws.subprotocol == "v4.channel.k8s.io"
    frames: list[bytes] = []
    while True:
        op, data = ws.recv_data()
        if op == 8:  # close
            break
        frames.append(bytes(data))
    assert frames[0] == b"\x01x\n"
    status = json.loads(frames[-1][1:])
    assert frames[-1][0] == 3 and status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "7"}]


def test_exec_needs_create_as_well_as_get(env: Env) -> None:
    import websocket
    from nbk_rbactest import binding, role, rule, subject

    api = env.cluster.api
    api.create(role("exec-get", "default", rule("get", "", "pods pods/exec")))
    api.create(binding("exec-get", "default", "Role", "exec-get", subject("User", "getter")))
    path = "/api/v1/namespaces/default/pods/box/exec?command=true&stdout=true"

    def refused() -> str:
        try:
            _ws_call(env, path, "v5.channel.k8s.io", user="getter", groups=()).close()
        except websocket.WebSocketBadStatusException as e:
            return f"{e.status_code} {e.resp_body!r}"
        return ""

    message = wait_until(refused, 10, "the RBAC informers to know the role")
    assert message.startswith("403") and "cannot create resource" in message and "pods/exec" in message
    api.patch("Role", "exec-get", "default", {"rules": [rule("get create", "", "pods pods/exec")]})
    wait_until(lambda: not refused(), 10, "create on pods/exec to be granted")


@pytest.mark.parametrize("binary", [f"/usr/lib/google-cloud-sdk/bin/kubectl.1.{m}" for m in (27, 30, 31, 33)])
def test_other_kubectl_versions_exec(env: Env, binary: str) -> None:
    assert os.path.exists(binary), f"{binary} is missing"
    proc = subprocess.run(
        [
            binary,
            "--kubeconfig",
            env.kubectl.kubeconfig,
            "exec",
            "-i",
            "box",
            "--",
            "sh",
            "-c",
            "cat; exit 2",
        ],
        input="via 1.33\n",
        capture_output=True,
        text=True,
        timeout=30,
        env=env.kubectl.env,
    )
    assert proc.returncode == 2 and proc.stdout == "via 1.33\n", proc.stderr
