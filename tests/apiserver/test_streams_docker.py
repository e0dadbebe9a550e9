"""kubectl exec (stdout, exit code, stdin, cp), attach and the Python client's port-forward against a
served LocalCluster(nodes=1, runtime="docker"): the engine's exec and attach APIs, and a connection
made inside the pod's network namespace.

Marked `docker` (the `docker_client` fixture says why it cannot run); every kubectl call is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
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
