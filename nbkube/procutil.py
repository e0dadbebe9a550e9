"""Process facts that crash recovery needs: is a recorded pid still the same process, and make a
child die with its parent.

Who calls it: the private etcd launcher (store/etcd_server.py: a pidfile naming etcd and its owner,
PR_SET_PDEATHSIG so etcd ends with the process that started it), the cluster wiring (cluster.py:
folders of unnamed clusters whose owner died) and the process runtime. A pid alone is not an
identity, the kernel reuses them: a pid together with its start time (clock ticks since boot, field
22 of /proc/PID/stat) is, which is what every record here stores.

`process_identity()` puts that pair, with what makes a pid mean the same thing to a reader (the
boot and the pid namespace), into a string a Lease holder can carry; `identity_dead()` answers
"is that holder's process certainly gone?" for a reader on the same machine, so leader election
can take a crashed predecessor's Lease at once instead of waiting out its duration.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "start_ticks",
    "same_process",
    "pdeathsig_preexec",
    "end_process",
    "lock_holders",
    "describe",
    "process_identity",
    "identity_dead",
    "stop_on_signals",
]

_PR_SET_PDEATHSIG = 1


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields from the state on (field 3), or [] when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            data = f.read()
    except OSError:
        return []
    # the command name may hold spaces and parentheses: fields count from the last ')'
    return data[data.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """The kernel start time of `pid` in clock ticks (None: no such process, or no /proc)."""
    try:
        return int(_stat(pid)[19])
    except (IndexError, ValueError):
        return None


def same_process(pid: object, ticks: object) -> bool:
    """Whether the process recorded as (pid, start ticks) is still running (not a reused pid).

    A zombie is not running: it has exited and released its locks, only its parent (or, orphaned,
    an init that may be slow to reap, as in some containers) has not collected it yet."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or not isinstance(ticks, int):
        return False
    fields = _stat(pid)
    try:
        return int(fields[19]) == ticks and fields[0] not in ("Z", "X")
    except (IndexError, ValueError):
        return False


def pdeathsig_preexec(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` for Popen that makes the child receive `sig` when its parent goes, or None
    when that would be wrong or impossible.

    Linux sends the signal when the *thread* that forked the child exits, not the process: a child
    started from a short-lived worker thread would die with that thread. So it is armed only from the
    main thread (a notebook's cells, `nbkube up`); a child started elsewhere relies on the pidfile
    that its launcher keeps (the next start ends it)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name, use_errno=True)
    parent = os.getpid()

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        # the parent may have died between fork and prctl: then nobody would ever send the signal
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return arm


def end_process(pid: int, ticks: int, grace: float = 5.0) -> bool:
    """SIGTERM the recorded process, SIGKILL after `grace` seconds; True once it is gone."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not same_process(pid, ticks):
            return True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)  # our own child would stay a zombie otherwise
            if not same_process(pid, ticks):
                return True
            time.sleep(0.05)
    return not same_process(pid, ticks)


def lock_holders(folder: str) -> dict[int, str]:
    """The processes holding a POSIX or flock lock on a file under `folder` (pid -> file), from
    /proc/locks: what tells "etcd waits for its data folder's lock" from any other hang."""
    inodes: dict[tuple[int, int, int], str] = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with contextlib.suppress(OSError):
                st = os.stat(path)
                inodes[(os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)] = path
    holders: dict[int, str] = {}
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return holders
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; blocked waiters have a "->" field
        if "->" in parts:
            continue
        try:
            pid = int(parts[4])
            major, minor, inode = parts[5].split(":")
            key = (int(major, 16), int(minor, 16), int(inode))
        except (IndexError, ValueError):
            continue
        if key in inodes:
            holders[pid] = inodes[key]
    return holders


def describe(pid: int) -> str:
    """`pid N (command line)`, for messages naming a process."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        argv = []
    cmd = " ".join(argv)
    if len(cmd) > 120:
        cmd = cmd[:117] + "..."
    return f"pid {pid} ({cmd})" if cmd else f"pid {pid}"


_IDENTITY_TAG = "nbkpid"


def _pid_scope() -> str:
    """What a pid is relative to: this boot and this pid namespace ("" when either is unknown)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip().replace("-", "")[:16]
        ns = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return ""
    inode = ns[ns.find("[") + 1 : ns.rfind("]")]
    return f"{boot}.{inode}" if boot and inode.isdigit() else ""


def process_identity(pid: int | None = None) -> str:
    """A Lease holder identity naming this process: host, pid scope, pid, start ticks and a random
    suffix (two holders in one process differ), e.g. `host_nbkpid.SCOPE.1234.5678_ab12cd34`."""
    pid = os.getpid() if pid is None else pid
    host = socket.gethostname().replace("_", "-")
    scope, ticks = _pid_scope(), start_ticks(pid)
    if not scope or ticks is None:  # no /proc: an identity nobody can prove dead
        return f"{host}_{pid}_{uuid.uuid4().hex[:8]}"
    return f"{host}_{_IDENTITY_TAG}.{scope}.{pid}.{ticks}_{uuid.uuid4().hex[:8]}"


def identity_dead(identity: str) -> bool:
    """True only when `identity` came from `process_identity()` on this machine (same boot, same
    pid namespace) and that process is no longer running. Any other holder (another machine, an
    identity of another form) is never called dead: its Lease must lapse."""
    parts = identity.split("_")
    if len(parts) < 3:
        return False
    fields = parts[-2].split(".")
    if len(fields) != 5 or fields[0] != _IDENTITY_TAG:
        return False
    scope = _pid_scope()
    if not scope or f"{fields[1]}.{fields[2]}" != scope:
        return False
    try:
        pid, ticks = int(fields[3]), int(fields[4])
    except ValueError:
        return False
    return pid > 0 and not same_process(pid, ticks)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM set `stop` (a foreground command or a child process ends
    cleanly instead of dying mid-write); the previous handlers are back afterwards. Only the main
    thread may install handlers: elsewhere this changes nothing."""
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
