"""Process facts that crash recovery needs: is a recorded pid still the same process, and make a
child die with its parent.

Who calls it: the private etcd launcher (store/etcd_server.py: a pidfile naming etcd and its owner,
PR_SET_PDEATHSIG so etcd ends with the process that started it), the cluster wiring (cluster.py:
folders of unnamed clusters whose owner died) and the process runtime. A pid alone is not an
identity, the kernel reuses them: a pid together with its start time (clock ticks since boot, field
22 of /proc/PID/stat) is, which is what every record here stores.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import threading
import time
from collections.abc import Callable

__all__ = ["start_ticks", "same_process", "pdeathsig_preexec", "end_process", "lock_holders", "describe"]

_PR_SET_PDEATHSIG = 1


def start_ticks(pid: int) -> int | None:
    """The kernel start time of `pid` in clock ticks (None: no such process, or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            data = f.read()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: fields count from the last ')'
    fields = data[data.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def same_process(pid: object, ticks: object) -> bool:
    """Whether the process recorded as (pid, start ticks) is still running (not a reused pid)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or not isinstance(ticks, int):
        return False
    return start_ticks(pid) == ticks


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
