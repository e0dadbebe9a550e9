"""Launch a private, single-member etcd on loopback from the host's `etcd` binary.

Who calls it: the store contract tests (a real etcd, not a mock), `benchmarks/store.py`, CI, and the
cluster wiring when `store="auto"` finds the binary. The server listens on 127.0.0.1 only, on free
ports, with its data in a temporary directory unless one is given; `stop()` (or leaving the `with`
block) terminates it and removes what it created.

With `socket_dir` (what a cluster's private etcd uses) it listens on no port at all: its client and
peer endpoints are unix sockets in that folder, which must be 0700, so only the folder's owner (and
root) can connect; any local user could connect to a loopback port, and etcd without TLS asks no
credential. The data directory is 0700 either way.

Crash safety (a cluster's etcd must not outlive the process that started it, or the next start finds
its data folder locked): the child gets PR_SET_PDEATHSIG (nbkube/procutil.py), and with `socket_dir`
a pidfile `etcd.pid` there records etcd's and its owner's pid and start time. A launch that finds
the etcd of a dead owner ends it and says so in one line; one whose data folder another process
locks fails at once naming that process, instead of waiting for an etcd that cannot start. The
signal is SIGKILL: an owner that died without stopping etcd gets no graceful shutdown from it
(etcd's WAL makes a kill safe), and a restart right behind it finds the data folder free at once.

Start time (what a restarted `nbkube up` waits for): etcd itself answers within tens of
milliseconds; what costs is waiting. A single member has no peer to lose an election to, so short
raft timers (`_RAFT_FLAGS`) only make it elect itself sooner; and the readiness poll sets gRPC's
reconnect back-off low, whose default first retry (1 s) would otherwise follow the one refused
connection a starting server gives.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

from nbkube.errors import BadRequest, StoreUnavailable
from nbkube.procutil import describe, end_process, lock_holders, pdeathsig_preexec, same_process, start_ticks
from nbkube.security.private import make_private_dir
from nbkube.store.base import MAX_VALUE_BYTES

__all__ = ["EtcdServer", "launch_etcd", "etcd_available"]

# etcd refuses requests over --max-request-bytes; leave room for the key and the request framing
# around the largest value the store accepts.
_MAX_REQUEST_BYTES = MAX_VALUE_BYTES + 512 * 1024
# etcd 3.4 wants unix listen URLs in host:port form (`unix://name:port`, a path relative to its
# working directory); the ":port" is only part of the socket's file name.
CLIENT_SOCKET = "etcd.sock:2379"
PEER_SOCKET = "etcd-peer.sock:2380"
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path holds 108 bytes with the terminating NUL
PIDFILE = "etcd.pid"
# raft timers for a single member (etcd's defaults, 100 ms / 1 s, are for peers across a network):
# it elects itself after the election timeout, and has no follower whose heartbeats could be late
_RAFT_FLAGS = ["--heartbeat-interval=20", "--election-timeout=100"]
# etcd keeps in memory every raft entry since its last snapshot, by default up to 100,000 of them.
# nbkube's batched writes make an entry one transaction of up to 500 objects, so that default held
# gigabytes: at 5,000 sim nodes and 150,000 pods this etcd's RSS was 3.95 GB with it and 1.95 GB
# with 10,000 (same run time). A snapshot of a member with no peer costs only a write of its file.
_MEMORY_FLAGS = ["--snapshot-count=10000"]
# how soon the readiness poll's channel connects again after a refused connection
_READY_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 20),
    ("grpc.min_reconnect_backoff_ms", 20),
    ("grpc.max_reconnect_backoff_ms", 200),
]

log = logging.getLogger(__name__)


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
        self,
        proc: subprocess.Popen[bytes],
        port: int | None,
        data_dir: str,
        log_path: str,
        own_dir: str | None,
        socket_path: str | None = None,
    ):
        self.proc = proc
        self.port = port  # None: on the unix socket `socket_path`
        self.socket_path = socket_path
        self.url = f"etcd+unix://{socket_path}" if socket_path else f"etcd://127.0.0.1:{port}"
        # what gRPC dials
        self.target = f"unix://{socket_path}" if socket_path else f"127.0.0.1:{port}"
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
        if self.socket_path is not None:
            folder = os.path.dirname(self.socket_path)
            for name in (CLIENT_SOCKET, PEER_SOCKET, PIDFILE):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, name))
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None

    def __enter__(self) -> EtcdServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EtcdServer({self.url!r}, pid={self.proc.pid})"


def _prepare_socket_dir(socket_dir: str) -> str:
    """The client socket's path in `socket_dir` (0700, ours), stale sockets of a dead etcd removed."""
    socket_dir = os.path.abspath(socket_dir)
    st = os.stat(socket_dir)
    if st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o077:
        raise BadRequest(f"{socket_dir}: etcd's socket folder must be ours and 0700 (only we may connect)")
    client = os.path.join(socket_dir, CLIENT_SOCKET)
    if len(client.encode()) > _SUN_PATH_MAX:
        raise BadRequest(
            f"{client}: a unix socket path must be at most {_SUN_PATH_MAX} bytes; use a shorter cluster folder"
        )
    if os.path.exists(client):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(client)
        except OSError:
            pass  # nobody listens: left by an etcd that died
        else:
            raise StoreUnavailable(f"an etcd already serves {socket_dir} (socket {client})")
        finally:
            probe.close()
    for name in (CLIENT_SOCKET, PEER_SOCKET):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(socket_dir, name))
    return client


def _pidfile_record(socket_dir: str) -> dict[str, object] | None:
    try:
        with open(os.path.join(socket_dir, PIDFILE), encoding="utf-8") as fh:
            rec = json.load(fh)
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def end_leftover(socket_dir: str) -> bool:
    """End the etcd that a dead owner left serving `socket_dir` (its pidfile says which); True if one
    was ended. An etcd whose owner still runs is that owner's: StoreUnavailable names it."""
    rec = _pidfile_record(socket_dir)
    if rec is None:
        return False
    pid, ticks = rec.get("etcd"), rec.get("etcdTicks")
    if not same_process(pid, ticks):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(socket_dir, PIDFILE))
        return False
    assert isinstance(pid, int) and isinstance(ticks, int)
    owner = rec.get("owner")
    if same_process(owner, rec.get("ownerTicks")):
        raise StoreUnavailable(
            f"an etcd already serves {socket_dir} ({describe(pid)}) for process {owner}, which still runs: "
            "stop that cluster first"
        )
    if not end_process(pid, ticks):
        raise StoreUnavailable(
            f"{socket_dir}: cannot end the etcd left by dead process {owner}: {describe(pid)}"
        )
    log.warning("ended etcd pid %d left running in %s by process %s, which died", pid, socket_dir, owner)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(socket_dir, PIDFILE))
    return True


def _check_unlocked(data: str) -> None:
    """Fail now, naming the holder, when another process locks etcd's data folder (etcd itself
    would wait for the lock without a word)."""
    holders = lock_holders(data)
    if holders:
        pid, path = sorted(holders.items())[0]
        raise StoreUnavailable(
            f"etcd cannot start: its data folder {data} is locked by {describe(pid)} (file {path}); "
            "another etcd runs on it"
        )


def _write_pidfile(socket_dir: str, proc: subprocess.Popen[bytes]) -> None:
    rec = {
        "etcd": proc.pid,
        "etcdTicks": start_ticks(proc.pid),
        "owner": os.getpid(),
        "ownerTicks": start_ticks(os.getpid()),
    }
    path = os.path.join(socket_dir, PIDFILE)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(rec, fh)
    os.replace(tmp, path)


def launch_etcd(
    data_dir: str | None = None, *, socket_dir: str | None = None, timeout: float = 15.0
) -> EtcdServer:
    """Start `etcd` and wait until it answers: on 127.0.0.1 with free ports, or, with `socket_dir`
    (a 0700 folder of ours), on unix sockets there and no port at all.

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
        data = os.path.abspath(data_dir) if data_dir is not None else os.path.join(own_dir, "data")
        make_private_dir(data)
        log_path = os.path.join(own_dir, "etcd.log")
        socket_path: str | None = None
        client_port: int | None = None
        if socket_dir is not None:
            try:
                end_leftover(os.path.abspath(socket_dir))
                socket_path = _prepare_socket_dir(socket_dir)
            except BaseException:
                shutil.rmtree(own_dir, ignore_errors=True)
                raise
            peer, client = f"unix://{PEER_SOCKET}", f"unix://{CLIENT_SOCKET}"
        else:
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
            *_RAFT_FLAGS,
            *_MEMORY_FLAGS,
        ]
        try:
            _check_unlocked(data)
        except BaseException:
            shutil.rmtree(own_dir, ignore_errors=True)
            raise
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=socket_dir,
                preexec_fn=pdeathsig_preexec(signal.SIGKILL),
            )
        server = EtcdServer(proc, client_port, data, log_path, own_dir, socket_path)
        if socket_dir is not None:
            _write_pidfile(os.path.abspath(socket_dir), proc)
        try:
            _wait_ready(server, timeout)
            return server
        except StoreUnavailable as err:
            last_error = str(err)
            server.stop()
            if socket_dir is not None or "address already in use" not in last_error:
                break
    raise StoreUnavailable(last_error)


def _wait_ready(server: EtcdServer, timeout: float) -> None:
    import grpc
    from etcd3 import etcdrpc

    deadline = time.monotonic() + timeout
    # The bare stub, not etcd3.client(): that one marks an endpoint "failed" for minutes after the
    # first refused connection, which is exactly what a server that is still starting gives.
    channel = grpc.insecure_channel(server.target, options=_READY_CHANNEL_OPTIONS)
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
                holders = {p: f for p, f in lock_holders(server.data_dir).items() if p != server.proc.pid}
                cause = (
                    f"its data folder {server.data_dir} is locked by {describe(min(holders))}"
                    if holders
                    else _tail(server.log_path) or "its log is empty"
                )
                raise StoreUnavailable(f"etcd on {server.url} did not answer within {timeout:g}s: {cause}")
            time.sleep(0.05)
    finally:
        channel.close()
