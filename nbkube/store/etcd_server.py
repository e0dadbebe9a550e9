"""Launch a private, single-member etcd on loopback from the host's `etcd` binary.

Who calls it: the store contract tests (a real etcd, not a mock), `benchmarks/store.py`, CI, and the
cluster wiring when `store="auto"` finds the binary. The server listens on 127.0.0.1 only, on free
ports, with its data in a temporary directory unless one is given; `stop()` (or leaving the `with`
block) terminates it and removes what it created.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time

from nbkube.errors import StoreUnavailable
from nbkube.store.base import MAX_VALUE_BYTES

__all__ = ["EtcdServer", "launch_etcd", "etcd_available"]

# etcd refuses requests over --max-request-bytes; leave room for the key and the request framing
# around the largest value the store accepts.
_MAX_REQUEST_BYTES = MAX_VALUE_BYTES + 512 * 1024


def etcd_available() -> bool:
    """Whether an `etcd` binary is on PATH."""
    return shutil.which("etcd") is not None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:]).strip()
    except OSError:
        return ""


class EtcdServer:
    """A running private etcd. Use `launch_etcd()` to make one."""

    def __init__(
        self, proc: subprocess.Popen[bytes], port: int, data_dir: str, log_path: str, own_dir: str | None
    ):
        self.proc = proc
        self.port = port
        self.url = f"etcd://127.0.0.1:{port}"
        self.data_dir = data_dir
        self.log_path = log_path
        self._own_dir = own_dir  # removed on stop: we created it

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None

    def __enter__(self) -> EtcdServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EtcdServer({self.url!r}, pid={self.proc.pid})"


def launch_etcd(data_dir: str | None = None, *, timeout: float = 15.0) -> EtcdServer:
    """Start `etcd` on 127.0.0.1 with free ports and wait until it answers.

    Raises StoreUnavailable (with the tail of etcd's log) when the binary is missing or the server
    does not come up within `timeout` seconds.
    """
    binary = shutil.which("etcd")
    if binary is None:
        raise StoreUnavailable(
            "cannot launch etcd: no `etcd` binary on PATH (Debian: apt-get install etcd-server)"
        )
    last_error = ""
    # A free port can be taken by someone else between our probe and etcd's bind: retry a few times.
    for _attempt in range(3):
        own_dir = tempfile.mkdtemp(prefix="nbkube-etcd-")
        data = data_dir if data_dir is not None else os.path.join(own_dir, "data")
        log_path = os.path.join(own_dir, "etcd.log")
        client_port, peer_port = _free_port(), _free_port()
        peer = f"http://127.0.0.1:{peer_port}"
        client = f"http://127.0.0.1:{client_port}"
        cmd = [
            binary,
            "--name=nbkube",
            f"--data-dir={data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=nbkube={peer}",
            "--initial-cluster-state=new",
            f"--max-request-bytes={_MAX_REQUEST_BYTES}",
            "--logger=zap",
            "--log-level=warn",
        ]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        server = EtcdServer(proc, client_port, data, log_path, own_dir)
        try:
            _wait_ready(server, timeout)
            return server
        except StoreUnavailable as err:
            last_error = str(err)
            server.stop()
            if "address already in use" not in last_error:
                break
    raise StoreUnavailable(last_error)


def _wait_ready(server: EtcdServer, timeout: float) -> None:
    import grpc
    from etcd3 import etcdrpc

    deadline = time.monotonic() + timeout
    # The bare stub, not etcd3.client(): that one marks an endpoint "failed" for minutes after the
    # first refused connection, which is exactly what a server that is still starting gives.
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        kv = etcdrpc.KVStub(channel)
        while True:
            if server.proc.poll() is not None:
                raise StoreUnavailable(
                    f"etcd exited with status {server.proc.returncode} before answering: {_tail(server.log_path)}"
                )
            with contextlib.suppress(grpc.RpcError):
                kv.Range(etcdrpc.RangeRequest(key=b"\0", count_only=True), timeout=1.0)
                return
            if time.monotonic() > deadline:
                raise StoreUnavailable(
                    f"etcd on {server.url} did not answer within {timeout:g}s: {_tail(server.log_path)}"
                )
            time.sleep(0.05)
    finally:
        channel.close()
