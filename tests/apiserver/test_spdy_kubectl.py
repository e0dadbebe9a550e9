"""kubectl port-forward (1.27 to 1.33: SPDY/3.1 plain and tunnelled in a WebSocket) and
kubectl 1.28's SPDY exec, cp and attach against a served LocalCluster(nodes=1, runtime="process").

One cluster for the module; every kubectl call is bounded by a subprocess timeout, every
port-forward process is killed and waited for in a finally, and every wait is a bounded poll.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import json
import os
import pty
import select
import socket
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from nbk_apitest import Kubectl, tls
from nbk_clustertest import httpd_pod, pod_ready, wait_until

from nbkube.apiserver import ApiServer, serve, spdy, spdystreams
from nbkube.cluster import LocalCluster

pytestmark = pytest.mark.slow

NODE = "node-1"
SDK = "/usr/lib/google-cloud-sdk/bin/kubectl.1.{}"


class Env:
    def __init__(self, cluster: LocalCluster, server: ApiServer, kubectl: Kubectl, folder: str):
        self.cluster, self.server, self.kubectl, self.folder = cluster, server, kubectl, folder

    def start(self, pod: dict[str, Any]) -> None:
        self.cluster.api.create(pod)
        name = pod["metadata"]["name"]
        wait_until(lambda: pod_ready(self.cluster.api.get("Pod", name, "default")), 30, f"pod {name} ready")

    def listening(self, name: str, port: int) -> None:
        """Wait until the pod accepts connections on `port` (running is not listening yet)."""
        ip = self.cluster.api.get("Pod", name, "default")["status"]["podIP"]

        def accepts() -> bool:
            try:
                socket.create_connection((ip, port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_until(accepts, 30, f"pod {name} listening on {port}")

    def run(
        self, minor: int, *args: str, stdin: str | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        binary = SDK.format(minor)
        assert os.path.exists(binary), f"{binary} is missing"
        return subprocess.run(
            [binary, "--kubeconfig", self.kubectl.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.kubectl.env,
        )


def _pod(name: str, script: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": NODE,
            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", script]}],
        },
    }


@pytest.fixture(scope="module")
def env(tmp_path_factory: Any) -> Iterator[Env]:
    folder = str(tmp_path_factory.mktemp("spdy"))
    with LocalCluster(nodes=1, runtime="process", store="sqlite", data_dir=folder + "/c", name="spdy") as c:
        srv = serve(c)
        try:
            home = os.path.join(folder, "home")
            os.mkdir(home)
            e = Env(c, srv, Kubectl(srv.write_kubeconfig(folder + "/kubeconfig"), home), folder)
            e.start(httpd_pod("web", NODE, 8080))
            e.listening("web", 8080)
            e.start(_pod("box", "exec sleep 3600"))
            e.start(_pod("sink", 'exec nc -ll -p 9000 -e sh -c "cat > up.bin"'))  # a file per upload
            e.listening("sink", 9000)
            yield e
        finally:
            srv.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str = "/") -> bytes:
    """GET `path` through the forwarded local port (HTTP/1.0: the pod closes after its answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


@contextlib.contextmanager
def _forward(env: Env, minor: int, *targets: str) -> Iterator[subprocess.Popen[str]]:
    """`kubectl port-forward TARGETS` running until the block ends (killed and waited for then,
    and after 60 s whatever happens, which also bounds reading its first line)."""
    binary = SDK.format(minor)
    assert os.path.exists(binary), f"{binary} is missing"
    proc = subprocess.Popen(
        [binary, "--kubeconfig", env.kubectl.kubeconfig, "port-forward", *targets],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env.kubectl.env,
    )
    timer = threading.Timer(60, proc.kill)
    timer.start()
    try:
        yield proc
    finally:
        timer.cancel()
        proc.kill()
        proc.wait(10)


def _listening(proc: subprocess.Popen[str], local: int, remote: int) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "Forwarding from 127.0.0.1:N -> P" once it listens
    if f"127.0.0.1:{local} -> {remote}" not in line:
        proc.kill()
        pytest.fail(f"kubectl port-forward did not start: {line}{proc.stderr.read() if proc.stderr else ''}")


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which SPDY path the server took, in order: "upgrade" or "tunnel"."""
    taken: list[str] = []
    upgrade, tunnel = spdystreams.serve_upgrade, spdystreams.serve_tunnel

    async def counted_upgrade(*args: Any) -> Any:
        taken.append("upgrade")
        return await upgrade(*args)

    async def counted_tunnel(*args: Any) -> Any:
        taken.append("tunnel")
        return await tunnel(*args)

    monkeypatch.setattr(spdystreams, "serve_upgrade", counted_upgrade)
    monkeypatch.setattr(spdystreams, "serve_tunnel", counted_tunnel)
    return taken


# kubectl tunnels port-forward's SPDY in a WebSocket from 1.31 (PortForwardWebsockets, on by default)
@pytest.mark.parametrize(
    ("minor", "path"), [(27, "upgrade"), (28, "upgrade"), (29, "upgrade"), (31, "tunnel"), (32, "tunnel"), (33, "tunnel")]
)
def test_kubectl_port_forward_http_get(env: Env, minor: int, path: str, paths: list[str]) -> None:
    local = _free_port()
    with _forward(env, minor, "pod/web", f"{local}:8080") as proc:
        _listening(proc, local, 8080)
        for _ in range(3):  # one stream pair per connection, all on the one session
            data = _get(local)
            assert data.startswith(b"HTTP/1.") and data.endswith(b"\r\n\r\nweb\n"), data
        assert proc.poll() is None
    assert paths == [path]


@pytest.mark.parametrize("minor", [28, 33])
def test_port_forward_parallel_connections_and_a_large_body(env: Env, minor: int) -> None:
    # 2.7 MB each way round the 64 KiB SPDY window (neither side counts windows) and 8 connections
    # at once, their stream pairs interleaved on the one session; then 3 MB the other way
    if not os.path.exists(os.path.join(env.folder, "big.made")):
        env.kubectl.ok("exec", "web", "--", "sh", "-c", "seq 1 400000 > w/big.txt")
        open(os.path.join(env.folder, "big.made"), "w").close()
    local = _free_port()
    with _forward(env, minor, "pod/web", f"{local}:8080") as proc:
        _listening(proc, local, 8080)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: _get(local, "/big.txt"), range(8)))
        expected = "".join(f"{i}\n" for i in range(1, 400001)).encode()
        for data in answers:
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and body == expected, head
    size = 3_000_000 + minor  # a size of this test's own
    local = _free_port()
    with _forward(env, minor, "pod/sink", f"{local}:9000") as proc:
        _listening(proc, local, 9000)
        with socket.create_connection(("127.0.0.1", local), timeout=10) as s:
            s.sendall(b"x" * size)
            s.shutdown(socket.SHUT_WR)  # the end of the upload, which ends the pod's nc
            s.settimeout(10)
            assert s.recv(10) == b""

    def received() -> bool:
        return env.kubectl.ok("exec", "sink", "--", "sh", "-c", "wc -c < up.bin").strip() == str(size)

    wait_until(received, 20, f"{size} bytes received by the pod")


def test_port_forward_to_a_closed_port_says_so(env: Env) -> None:
    local = _free_port()
    with _forward(env, 33, "pod/web", f"{local}:9") as proc:
        _listening(proc, local, 9)
        with socket.create_connection(("127.0.0.1", local), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            s.settimeout(10)
            assert s.recv(100) == b""
        proc.wait(20)  # kubectl ends a port-forward whose connection the pod refused
        err = proc.stderr.read() if proc.stderr else ""
    assert "error forwarding port 9" in err and "default/web" in err, err


@pytest.mark.parametrize("minor", [28, 33])
def test_port_forward_client_gone_leaves_no_agent_connection(env: Env, minor: int) -> None:
    local = _free_port()
    with _forward(env, minor, "pod/web", f"{local}:8080") as proc:
        _listening(proc, local, 8080)
        with socket.create_connection(("127.0.0.1", local), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.0\r\n")  # a request left unfinished: the pod waits
            wait_until(lambda: _agent_connections(env) > 0, 10, "the forward open at the agent")
            proc.kill()  # kubectl goes away without closing anything
            proc.wait(10)
    wait_until(lambda: _agent_connections(env) == 0, 10, "no connection left to the agent")


def _agent_connections(env: Env) -> int:
    """Established TCP connections to the node agent's port (the API server's relays)."""
    node = env.cluster.api.get("Node", NODE)
    port = int(node["metadata"]["annotations"]["nbkube.io/agent-endpoint"].rsplit(":", 1)[1])
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return sum(1 for r in rows if int(r[2].split(":")[1], 16) == port and r[3] == "01")


@pytest.mark.parametrize("minor", [27, 28, 29])
def test_kubectl_128_exec_over_spdy(env: Env, minor: int) -> None:
    proc = env.run(minor, "exec", "box", "--", "sh", "-c", "echo out; echo err >&2")
    assert proc.returncode == 0 and proc.stdout == "out\n" and "err\n" in proc.stderr, proc.stderr
    proc = env.run(minor, "exec", "-i", "box", "--", "sh", "-c", "cat; exit 3", stdin="via spdy\n")
    assert proc.returncode == 3 and proc.stdout == "via spdy\n", proc.stderr
    assert "command terminated with exit code 3" in proc.stderr


def test_kubectl_128_cp_both_ways(env: Env) -> None:
    src = os.path.join(env.folder, "up.txt")
    with open(src, "w") as f:
        f.write("up and down\n" * 20000)  # past any 64 KiB window: flow control is not needed
    env.run(28, "cp", src, "box:/tmp/nbk-spdy-up.txt").check_returncode()
    back = os.path.join(env.folder, "down.txt")
    proc = env.run(28, "cp", "box:/tmp/nbk-spdy-up.txt", back)
    assert proc.returncode == 0, proc.stderr
    with open(back) as f, open(src) as g:
        assert f.read() == g.read()


def test_kubectl_128_attach_with_stdin(env: Env) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "reader", "namespace": "default"},
        "spec": {
            "nodeName": NODE,
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "command": ["sh", "-c", "while read l; do echo got $l; done"],
                    "stdin": True,
                    "stdinOnce": True,
                }
            ],
        },
    }
    env.start(pod)
    proc = env.run(28, "attach", "-i", "reader", stdin="one\ntwo\n")
    assert proc.returncode == 0 and proc.stdout == "got one\ngot two\n", proc.stderr


def test_kubectl_128_exec_with_a_terminal_sends_its_size(env: Env) -> None:
    # -t needs a terminal on kubectl's side: a pty of 40x100, read until kubectl exits (bounded)
    binary = SDK.format(28)
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    proc = subprocess.Popen(
        [
            binary,
            "--kubeconfig",
            env.kubectl.kubeconfig,
            "exec",
            "-it",
            "box",
            "--",
            "sh",
            "-c",
            # the size arrives on its own stream, maybe after the command starts: wait for it
            "until stty size 2>/dev/null | grep -qv '^0 0$'; do sleep 0.1; done; stty size; exit 5",
        ],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env.kubectl.env,
        start_new_session=True,
    )
    os.close(secondary)
    out = b""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 1)
            if ready:
                try:
                    chunk = os.read(primary, 4096)
                except OSError:  # EIO: every holder of the terminal has closed it
                    break
                if not chunk:
                    break
                out += chunk
        assert proc.wait(10) == 5, out
    finally:
        proc.kill()
        proc.wait(10)
        os.close(primary)
    assert b"40 100" in out, out


class RawClient:
    """A SPDY client of our own codec on a TLS connection upgraded by hand (bounded reads)."""

    def __init__(self, env: Env, path: str, protocols: tuple[str, ...]):
        raw = socket.create_connection(("127.0.0.1", env.server.port), timeout=10)
        self.sock = tls(env.server).wrap_socket(raw, server_hostname="127.0.0.1")
        offered = "".join(f"X-Stream-Protocol-Version: {p}\r\n" for p in protocols)
        self.sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
            f"{offered}Content-Length: 0\r\n\r\n".encode()
        )
        self.head = b""
        while b"\r\n\r\n" not in self.head:
            chunk = self.sock.recv(1)
            assert chunk, self.head
            self.head += chunk
        self.enc, self.dec = spdy.Encoder(), spdy.Decoder()

    def send(self, *frames: spdy.Frame) -> None:
        self.sock.sendall(b"".join(self.enc.encode(f) for f in frames))

    def frames(self, until: Any) -> list[spdy.Frame]:
        """Frames received until `until(frames)` holds or the server closes."""
        got: list[spdy.Frame] = []
        while not until(got):
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            got += self.dec.feed(chunk)
        return got


def test_raw_spdy_port_forward_session(env: Env) -> None:
    c = RawClient(env, "/api/v1/namespaces/default/pods/web/portforward", ("portforward.k8s.io",))
    try:
        assert (
            c.head.startswith(b"HTTP/1.1 101") and b"X-Stream-Protocol-Version: portforward.k8s.io" in c.head
        )
        c.send(
            spdy.Ping(1),
            spdy.SynStream(1, {"streamtype": "error", "port": "8080", "requestid": "0"}, fin=True),
            spdy.SynStream(3, {"streamtype": "data", "port": "8080", "requestid": "0"}),
            spdy.DataFrame(3, b"GET / HTTP/1.0\r\n\r\n"),
        )

        def finished(frames: list[spdy.Frame]) -> bool:
            return any(isinstance(f, spdy.DataFrame) and f.stream_id == 1 and f.fin for f in frames)

        frames = c.frames(finished)
        assert frames[:3] == [spdy.Ping(1), spdy.SynReply(1), spdy.SynReply(3)]
        body = b"".join(f.data for f in frames if isinstance(f, spdy.DataFrame) and f.stream_id == 3)
        assert body.startswith(b"HTTP/1.") and body.endswith(b"\r\n\r\nweb\n")
        assert spdy.DataFrame(3, b"", fin=True) in frames  # the pod closed: so did the data stream
        # a stream without a request id is refused; garbage then ends the session with GOAWAY
        c.send(spdy.SynStream(5, {"streamtype": "data", "port": "8080"}))
        assert c.frames(lambda fs: spdy.RstStream(5, spdy.CANCEL) in fs)[-1] == spdy.RstStream(5, spdy.CANCEL)
        c.sock.sendall(bytes.fromhex("80020006 00000004 00000001"))
        tail = c.frames(lambda fs: False)  # until the server closes the connection
        assert tail[-1] == spdy.GoAway(5, spdy.GOAWAY_PROTOCOL_ERROR)
    finally:
        c.sock.close()


def test_spdy_protocol_versions_are_negotiated(env: Env) -> None:
    path = "/api/v1/namespaces/default/pods/box/exec?command=true&stdout=true&stderr=false"
    c = RawClient(env, path, ("v3.channel.k8s.io", "v2.channel.k8s.io"))
    try:
        assert c.head.startswith(b"HTTP/1.1 400"), c.head
        body = c.sock.recv(4096).decode()
        assert (
            "(v3.channel.k8s.io, v2.channel.k8s.io) is supported; this server speaks v4.channel.k8s.io"
            in body
        )
    finally:
        c.sock.close()
    c = RawClient(env, path, ("v4.channel.k8s.io", "v3.channel.k8s.io"))
    try:
        assert b"X-Stream-Protocol-Version: v4.channel.k8s.io" in c.head, c.head
        c.send(spdy.SynStream(1, {"streamtype": "error"}), spdy.SynStream(3, {"streamtype": "stdout"}))
        frames = c.frames(lambda fs: spdy.DataFrame(1, b"", fin=True) in fs)
        status = b"".join(f.data for f in frames if isinstance(f, spdy.DataFrame) and f.stream_id == 1)
        assert json.loads(status)["status"] == "Success"
    finally:
        c.sock.close()


def test_raw_spdy_in_a_websocket(env: Env) -> None:
    import ssl

    import websocket

    def tunnel() -> Any:
        return websocket.create_connection(
            f"wss://127.0.0.1:{env.server.port}/api/v1/namespaces/default/pods/web/portforward",
            subprotocols=["SPDY/3.1+portforward.k8s.io"],
            sslopt={"context": tls(env.server), "cert_reqs": ssl.CERT_REQUIRED},
            timeout=10,
        )

    ws = tunnel()
    try:
        assert ws.subprotocol.lower() == "spdy/3.1+portforward.k8s.io"  # websocket-client lower-cases it
        enc, dec = spdy.Encoder(), spdy.Decoder()
        wire = b"".join(
            enc.encode(f)
            for f in (
                spdy.SynStream(1, {"streamtype": "error", "port": "8080", "requestid": "7"}, fin=True),
                spdy.SynStream(3, {"streamtype": "data", "port": "8080", "requestid": "7"}),
                spdy.DataFrame(3, b"GET / HTTP/1.0\r\n\r\n"),
            )
        )
        for i in range(0, len(wire), 5):  # messages cut anywhere: the tunnel is a byte stream
            ws.send_binary(wire[i : i + 5])
        frames: list[spdy.Frame] = []
        while spdy.DataFrame(1, b"", fin=True) not in frames:
            frames += dec.feed(ws.recv())
        body = b"".join(f.data for f in frames if isinstance(f, spdy.DataFrame) and f.stream_id == 3)
        assert body.endswith(b"\r\n\r\nweb\n"), frames
    finally:
        ws.close()
    ws = tunnel()
    try:
        ws.send("text")  # SPDY travels in binary messages only
        assert ws.recv_data()[0] == websocket.ABNF.OPCODE_CLOSE
    finally:
        ws.close()
