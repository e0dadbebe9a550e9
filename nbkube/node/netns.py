"""Stepping one thread into a network namespace, and starting a program there.

Why: the node-side parts that program a node's namespace (the iptables proxy, the NetworkPolicy
firewall, the hostPort table) and the Docker runtime's probes (which must see the pod's own
network) all need "be in that namespace for a moment". A namespace is a per-thread attribute in
Linux, so a thread can `setns(2)` in, start a program (which inherits it) or open a socket, and
step back, without `ip netns exec` (one more program to start, which also unshares a mount
namespace and remounts /sys: milliseconds per call, more on a busy machine).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import subprocess
from collections.abc import Iterator

__all__ = ["entered", "run_in", "setns"]

_CLONE_NEWNET = 0x40000000
_libc: ctypes.CDLL | None = None


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open at `fd`; OSError on failure."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns: {os.strerror(code)}")


def _path(netns: str) -> str:
    # a name under /var/run/netns (`ip netns add`), or a path such as /proc/PID/ns/net
    return netns if "/" in netns else f"/var/run/netns/{netns}"


@contextlib.contextmanager
def entered(netns: str | None) -> Iterator[None]:
    """Run the body with this thread (only this one) in network namespace `netns` (None: stay)."""
    if not netns:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            target = os.open(_path(netns), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise OSError(errno.ENOENT, f"no network namespace {netns}") from None
        try:
            setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            setns(home)  # cannot fail for our own namespace; if it did, better loud than wrong
    finally:
        os.close(home)


def run_in(
    netns: str | None, argv: list[str], input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `argv` in network namespace `netns` (the caller's when None) and wait for it.

    OSError (no such program or namespace) and subprocess.TimeoutExpired are the caller's to turn
    into its own error; a non-zero exit is returned, not raised."""
    with entered(netns):
        # started inside the namespace switch (the child inherits this thread's namespace), fed
        # and waited for outside it
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)
