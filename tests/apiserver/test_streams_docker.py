"""kubectl exec (stdout, exit code, stdin, cp), attach and the Python client's port-forward against a
served LocalCluster(nodes=1, runtime="docker"): the engine's exec and attach APIs, and a connection
made inside the pod's network namespace.

Marked `docker` (the `docker_client` fixture says why it cannot run); every kubectl call is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from nbk_apitest import KUBECTL, Kubectl
from nbk_clustertest import httpd_pod, pod_ready, wait_until

from nbkube.apiserver import serve
from nbkube.cluster import LocalCluster

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def dk(tmp_path_factory: Any, docker_client: Any) -> Iterator[tuple[LocalCluster, Kubectl]]:
    assert KUBECTL is not None, "kubectl is not installed: these tests need the real kubectl (>= 1.30)"
    folder = str(tmp_path_factory.mktemp("dkstreams"))
    with LocalCluster(
        nodes=1, runtime="docker", store="sqlite", profile="fast", data_dir=folder + "/c", name="dks"
    ) as c:
        srv = serve(c)
        try:
            home = os.path.join(folder, "home")
            os.mkdir(home)
            kc = Kubectl(srv.write_kubeconfig(folder + "/kubeconfig"), home)
            node = sorted(c.node_addresses())[0]
            c.api.create(httpd_pod("web", node, 80))
            box = httpd_pod("box", node, 81)
            box["spec"]["containers"][0].update(
                {
                    "command": ["sh", "-c", "while read l; do echo got $l; done"],
                    "stdin": True,
                    "stdinOnce": True,
                }
            )
            c.api.create(box)
            for name in ("web", "box"):
                wait_until(lambda n=name: pod_ready(c.api.get("Pod", n, "default")), 60, f"pod {name} ready")
            yield c, kc
        finally:
            srv.stop()


def test_docker_exec(dk: tuple[LocalCluster, Kubectl]) -> None:
    _, kc = dk
    assert kc.ok("exec", "web", "--", "cat", "/proc/1/cmdline").startswith("httpd")  # in the container
    proc = kc("exec", "web", "--", "sh", "-c", "echo out; echo err >&2; exit 4")
    assert proc.returncode == 4 and proc.stdout == "out\n" and "err\n" in proc.stderr
    assert kc.ok("exec", "-i", "web", "--", "cat", stdin="in\n") == "in\n"


def test_docker_cp(dk: tuple[LocalCluster, Kubectl], tmp_path: Any) -> None:
    _, kc = dk
    src = tmp_path / "f.txt"
    src.write_text("through the engine\n" * 100)
    kc.ok("cp", str(src), "web:/tmp/f.txt")
    kc.ok("cp", "web:/tmp/f.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == src.read_text()


def test_docker_attach_with_stdin_once(dk: tuple[LocalCluster, Kubectl]) -> None:
    _, kc = dk
    assert kc.ok("attach", "-i", "box", stdin="one\ntwo\n", timeout=30).endswith("got one\ngot two\n")


def test_docker_exec_client_gone_kills_the_process(dk: tuple[LocalCluster, Kubectl]) -> None:
    c, kc = dk
    assert KUBECTL is not None
    proc = subprocess.Popen(
        [KUBECTL, "--kubeconfig", kc.kubeconfig, "exec", "web", "--", "sh", "-c", "echo $$; exec sleep 300"],
        stdout=subprocess.PIPE,
        text=True,
        env=kc.env,
    )
    assert proc.stdout is not None
    pid = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)

    def gone() -> bool:
        return kc("exec", "web", "--", "sh", "-c", f"test -e /proc/{pid}").returncode != 0

    wait_until(gone, 15, f"exec'd process {pid} gone inside the container")


def test_docker_python_client_portforward(dk: tuple[LocalCluster, Kubectl]) -> None:
    from kubernetes import client, config
    from kubernetes.stream import portforward

    _, kc = dk
    config.load_kube_config(kc.kubeconfig)
    api = client.CoreV1Api()
    pf = portforward(api.connect_get_namespaced_pod_portforward, "web", "default", ports="80")
    sock = pf.socket(80)
    sock.setblocking(True)
    sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"HTTP/1.") and data.endswith(b"\r\n\r\nweb\n"), (data, pf.error(80))


def test_docker_logs_options(dk: tuple[LocalCluster, Kubectl]) -> None:
    _, kc = dk
    kc.ok("exec", "web", "--", "sh", "-c", "echo hit > /proc/1/fd/1")  # a line in the container's log
    last = kc.ok("logs", "web", "--tail=1", "--timestamps")
    stamp, line = last.split(" ", 1)
    assert line == "hit\n" and stamp.endswith("Z") and "T" in stamp
    assert kc.ok("logs", "web", "--limit-bytes=2") == "hi"
    assert "hit\n" in kc.ok("logs", "web", "--since=1h")
    proc = kc("logs", "web", "--previous")
    assert proc.returncode == 1 and 'previous terminated container "web"' in proc.stderr


@pytest.mark.parametrize("minor", [28, 33])  # SPDY/3.1 upgraded, and tunnelled in a WebSocket
def test_docker_kubectl_port_forward(dk: tuple[LocalCluster, Kubectl], minor: int) -> None:
    _, kc = dk
    binary = f"/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}"
    assert os.path.exists(binary), f"{binary} is missing"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        local = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--kubeconfig", kc.kubeconfig, "port-forward", "pod/web", f"{local}:80"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kc.env,
    )
    timer = threading.Timer(60, proc.kill)  # bounds the readline below
    timer.start()
    try:
        assert proc.stdout is not None and f":{local} -> 80" in proc.stdout.readline()
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", local), timeout=10) as conn:
                conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                data = b""
                while chunk := conn.recv(4096):
                    data += chunk
            assert data.startswith(b"HTTP/1.") and data.endswith(b"\r\n\r\nweb\n"), data
    finally:
        timer.cancel()
        proc.kill()
        proc.wait(10)


def test_docker_kubectl_128_exec_and_cp_over_spdy(dk: tuple[LocalCluster, Kubectl], tmp_path: Any) -> None:
    _, kc = dk
    binary = "/usr/lib/google-cloud-sdk/bin/kubectl.1.28"
    assert os.path.exists(binary), f"{binary} is missing"

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, "--kubeconfig", kc.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
            env=kc.env,
        )

    proc = run("exec", "-i", "web", "--", "sh", "-c", "cat; echo err >&2; exit 4", stdin="in\n")
    assert proc.returncode == 4 and proc.stdout == "in\n" and "err\n" in proc.stderr, proc.stderr
    src = tmp_path / "spdy.txt"
    src.write_text("over SPDY\n" * 10000)
    assert run("cp", str(src), "web:/tmp/spdy.txt").returncode == 0
    assert run("cp", "web:/tmp/spdy.txt", str(tmp_path / "back.txt")).returncode == 0
    assert (tmp_path / "back.txt").read_text() == src.read_text()
