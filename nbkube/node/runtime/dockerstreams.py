"""Interactive exec and attach through the Docker engine: StreamSessions (session.py) on its sockets.

Why: the docker runtime (docker.py) serves `kubectl exec` and `kubectl attach` as the kubelet does
with a CRI runtime: an exec instance (`exec_create` + `exec_start(socket=True)`) or an attach to
the container's own stdio (`attach_socket`), both hijacked engine connections. Without a terminal
the engine multiplexes stdout and stderr on that socket (8-byte frame headers, read by the docker
SDK's `frames_iter`); with one it is the terminal's raw bytes. A client's end of stdin is a
half-close of the socket, which the engine passes on as end of file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import threading
import time
from typing import Any

from nbkube.node.runtime.session import Emit

__all__ = ["DockerAttach", "DockerExec"]


def _raw(sock: Any) -> Any:
    """The socket under what the SDK hands back (a SocketIO over the engine's unix socket; None
    once that is closed)."""
    return getattr(sock, "_sock", sock)


_FRAME = struct.Struct(">BxxxL")


def _response_reader(sock: Any) -> Any:
    """The buffered reader of the HTTP response that upgraded `sock`: the engine's first output
    can arrive in the same read as the response's headers, and then sits in that buffer, where
    reading the raw socket (as the SDK's frames_iter does) would lose it. None when the SDK's
    transport kept no such reader."""
    response = getattr(sock, "_response", None)
    return getattr(getattr(getattr(response, "raw", None), "_fp", None), "fp", None)


class _Hijacked:
    def __init__(self, sock: Any, tty: bool):
        self.sock = sock
        self.tty = tty
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock, contextlib.suppress(OSError, AttributeError):  # AttributeError: closed
            _raw(self.sock).sendall(data)

    def close_stdin(self) -> None:
        with self._lock, contextlib.suppress(OSError, AttributeError):
            _raw(self.sock).shutdown(socket.SHUT_WR)

    def _pump(self, emit: Emit) -> None:
        reader = _response_reader(self.sock)
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if reader is None:  # a transport whose socket the SDK hands back unbuffered
                from docker.utils.socket import frames_iter  # loaded where Docker is used, as in docker.py

                for stream, data in frames_iter(self.sock, self.tty):
                    if data:
                        emit(1 if self.tty else int(stream), data)
                return
            while True:
                if self.tty:  # a terminal's raw bytes
                    data = reader.read1(65536)
                    if not data:
                        return
                    emit(1, data)
                    continue
                header = reader.read(8)  # the engine's frame: stream (1 byte), 3 zero bytes, size
                if len(header) < 8:
                    return
                stream, size = _FRAME.unpack(header)
                data = reader.read(size)
                if data:
                    emit(2 if stream == 2 else 1, data)
                if len(data) < size:
                    return

    def _close(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            _raw(self.sock).shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()


class DockerExec(_Hijacked):
    """An exec instance of the engine; its exit code from `exec_inspect` once its output ends."""

    def __init__(self, api: Any, exec_id: str, sock: Any, tty: bool):
        super().__init__(sock, tty)
        self.api = api
        self.exec_id = exec_id

    def resize(self, width: int, height: int) -> None:
        if self.tty:
            with contextlib.suppress(Exception):
                self.api.exec_resize(self.exec_id, height=height, width=width)

    def kill(self) -> None:
        """The engine has no call to stop an exec: signal its process (a host pid; the engine
        runs on this host), then drop the connection."""
        with contextlib.suppress(Exception):
            info = self.api.exec_inspect(self.exec_id)
            pid = int(info.get("Pid") or 0)
            if info.get("Running") and pid > 0:
                os.kill(pid, signal.SIGKILL)
        self._close()

    def run(self, emit: Emit) -> int | None:
        try:
            self._pump(emit)
        finally:
            self._close()
        # the output ends as the process does; the engine records the exit code a moment later
        for _ in range(100):
            info = self.api.exec_inspect(self.exec_id)
            if not info.get("Running"):
                code = info.get("ExitCode")
                return int(code) if code is not None else None
            time.sleep(0.02)
        return None


class DockerAttach(_Hijacked):
    """An attach to the container's main process; detaching leaves it running."""

    def __init__(self, api: Any, container_id: str, sock: Any, tty: bool, stdin_once: bool):
        super().__init__(sock, tty)
        self.api = api
        self.container_id = container_id
        self.stdin_once = stdin_once

    def close_stdin(self) -> None:
        if self.stdin_once:  # the engine closes the container's stdin with the first attach's
            super().close_stdin()

    def resize(self, width: int, height: int) -> None:
        if self.tty:
            with contextlib.suppress(Exception):
                self.api.resize(self.container_id, height=height, width=width)

    def kill(self) -> None:
        self._close()

    def run(self, emit: Emit) -> int | None:
        try:
            self._pump(emit)
        finally:
            self._close()
        return None
