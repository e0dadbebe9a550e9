"""Interactive sessions with a container: what `kubectl exec -i` and `kubectl attach` are at the node.

Why: the node agent's streaming endpoint (nbkube/node/agentserver.py) relays a client's stdin,
resizes and end-of-input to something running in a container, and its stdout/stderr back, until it
ends. Each runtime makes such a `StreamSession` its own way (a child process with pipes or a
pseudo-terminal for the process runtime, the engine's exec and attach sockets for Docker); the agent
only sees this shape:

- `run(emit)` blocks until the session is over, calling `emit(channel, data)` (1 stdout, 2 stderr)
  from its reader threads as output comes, and returns the exit code (None: an attach, which has
  none of its own);
- `write`, `close_stdin`, `resize` may be called from another thread while `run` runs;
- `kill()` ends it early (the client went away): what an exec started dies; an attach detaches.

`PopenSession` is the one for host processes, shared by the process runtime's exec.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import struct
import subprocess
import termios
import threading
from collections.abc import Callable
from typing import IO, Protocol

__all__ = ["Emit", "PopenSession", "StreamSession", "make_controlling_tty", "set_winsize"]

Emit = Callable[[int, bytes], None]
_CHUNK = 32 * 1024


class StreamSession(Protocol):
    def run(self, emit: Emit) -> int | None: ...

    def write(self, data: bytes) -> None: ...

    def close_stdin(self) -> None: ...

    def resize(self, width: int, height: int) -> None: ...

    def kill(self) -> None: ...


def set_winsize(fd: int, width: int, height: int) -> None:
    """Tell the terminal at `fd` its size (what a terminal emulator does on a window resize)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", max(0, height), max(0, width), 0, 0))


def make_controlling_tty() -> None:
    """In a new session's child (preexec): make its stdin, a terminal, the controlling one, so
    ^C and job control work as in `docker exec -t`."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PopenSession:
    """A child process started in its own session (process group), with `stdin` a pipe (or None),
    and output on pipes, or on the pseudo-terminal whose master end is `master`."""

    def __init__(self, proc: subprocess.Popen[bytes], master: int | None = None):
        self.proc = proc
        self.master = master
        self._stdin: IO[bytes] | None = proc.stdin
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock, contextlib.suppress(OSError, ValueError):  # it may have ended already
            if self.master is not None:
                os.write(self.master, data)
            elif self._stdin is not None:
                self._stdin.write(data)
                self._stdin.flush()

    def close_stdin(self) -> None:
        with self._lock, contextlib.suppress(OSError, ValueError):
            if self.master is not None:
                os.write(self.master, b"\x04")  # a terminal's end of input is ^D
            elif self._stdin is not None:
                self._stdin.close()
                self._stdin = None

    def resize(self, width: int, height: int) -> None:
        if self.master is not None:
            with contextlib.suppress(OSError):
                set_winsize(self.master, width, height)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def run(self, emit: Emit) -> int | None:
        readers: list[threading.Thread] = []
        sources: list[tuple[int, int]] = (
            [(self.master, 1)]
            if self.master is not None
            else [
                (f.fileno(), ch) for f, ch in ((self.proc.stdout, 1), (self.proc.stderr, 2)) if f is not None
            ]
        )
        for fd, channel in sources:
            t = threading.Thread(
                target=_pump, args=(fd, channel, emit), name="nbkube-session-out", daemon=True
            )
            t.start()
            readers.append(t)
        try:
            code = self.proc.wait()
        finally:
            self.kill()  # what it left in the background dies with it, and lets go of the pipes
        for t in readers:
            t.join()
        self._close_all()
        return 128 - code if code < 0 else code

    def _close_all(self) -> None:
        with self._lock:
            for f in (self._stdin, self.proc.stdout, self.proc.stderr):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()
            self._stdin = None
            if self.master is not None:
                with contextlib.suppress(OSError):
                    os.close(self.master)
                self.master = None


def _pump(fd: int, channel: int, emit: Emit) -> None:
    while True:
        try:
            data = os.read(fd, _CHUNK)
        except OSError as e:
            if e.errno == errno.EINTR:
                continue
            return  # EIO: the terminal's last user is gone
        if not data:
            return
        emit(channel, data)
