"""The userspace proxy out of file descriptors: one line, a back-off, and service again afterwards.

A kernel that had opened too many files made asyncio report every failed accept() with a traceback,
once per listener per second (tens of thousands of them in a notebook). The proxy runs here in a
subprocess whose RLIMIT_NOFILE is lowered to a few descriptors above what it holds, and the test
opens more connections than that through it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

from nbkube.node.proxy.rules import Backend, ServicePortRule

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

_CHILD = r"""
import logging, os, resource, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
from nbkube.node.proxy.rules import Backend, ServicePortRule
from nbkube.node.proxy.userspace import UserspaceProxy

ip, port, backend_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rule = ServicePortRule("default/web", "", "TCP", ip, port, None, False, 60, (Backend("127.0.0.1", backend_port),))
proxy = UserspaceProxy()
assert proxy.sync([rule], []) == {}
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
print("ready", flush=True)
sys.stdin.read()  # until the test is done
print("starved", proxy.starved, flush=True)
proxy.stop()
"""


class _HoldingBackend:
    """Accepts connections, says hello, and keeps each one open (so the proxy keeps its descriptor)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.sendall(b"hello\n")
            self.held.append(conn)

    def release(self) -> None:
        for conn in self.held:
            conn.close()
        self.held.clear()

    def close(self) -> None:
        self.release()
        self.sock.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_out_of_descriptors_is_one_line_and_the_proxy_serves_again() -> None:
    backend = _HoldingBackend()
    port = _free_port()
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, "127.0.0.1", str(port), str(backend.port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": REPO},
        text=True,
    )
    clients: list[socket.socket] = []
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for _ in range(40):  # far more than the 8 spare descriptors: accept() runs out
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(3.5)  # asyncio retries each refused accept about once a second
        for c in clients:
            c.close()
        backend.release()
        # descriptors are free again: a new client is forwarded (bounded wait)
        deadline = time.monotonic() + 20
        answer = b""
        while time.monotonic() < deadline and answer != b"hello\n":
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                    conn.settimeout(2)
                    answer = conn.recv(64)
            except OSError:
                answer = b""
            if answer != b"hello\n":
                backend.release()
                time.sleep(0.3)
        assert answer == b"hello\n"
        # the check's own connection (and any the retries left) hold proxy descriptors while the
        # backend holds its end: freed, so the connection below cannot find the proxy out again
        backend.release()
        time.sleep(2.5)  # STARVE_QUIET without running out: the next connection says it is over
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.settimeout(2)
            assert conn.recv(64) == b"hello\n"
        out, err = child.communicate("", timeout=30)
    finally:
        for c in clients:
            c.close()
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=10)
        backend.close()
    starved = int(out.split()[-1])
    assert starved >= 2, (out, err)  # it ran out more than once...
    lines = [ln for ln in err.splitlines() if "out of file descriptors" in ln]
    assert len(lines) == 1, err  # ...and said so once
    assert "Traceback" not in err and "ERROR" not in err, err
    assert "file descriptors available again" in err


def test_the_rule_shape_used_by_the_child_is_current() -> None:
    rule = ServicePortRule(
        "default/web", "", "TCP", "127.0.0.1", 1, None, False, 60, (Backend("127.0.0.1", 2),)
    )
    assert rule.id == "default/web" and rule.backends[0].port == 2
