"""The framing of a streaming session between the API server and a node agent (exec, attach).

Why: `kubectl exec`/`attach` speak WebSocket channels to the API server; the API server relays them
to the node agent that holds the container, as kube-apiserver relays them to the kubelet. Between
the two we keep it plain: the API server sends `POST /stream/<exec|attach>/NS/POD/CONTAINER?...` with
`Connection: Upgrade` and `Upgrade: nbkube-stream` (and the cluster's agent credential); the agent
answers `101 Switching Protocols` (or an ordinary JSON error before anything runs), and from then on
both sides exchange frames of

    1 byte channel | 4 bytes big-endian length | payload

on the same TCP connection. The channels are Kubernetes' own: 0 stdin, 1 stdout, 2 stderr, 3 the
end (JSON: {"exitCode": N} or {"message": "..."}), 4 resize (JSON {"Width", "Height"}), 255 close
(payload: the one channel byte being closed: 0 is stdin's end of file). The agent sends channel 3
last and closes; when the API server's side closes first (the client went away), the agent kills
what it started.

`POST /stream/portforward/NS/POD/-?port=N` upgrades to the raw bytes of one TCP connection to the
pod's port instead: no frames, either side's end of stream is the connection's end.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

__all__ = [
    "CLOSE",
    "ERROR",
    "MAX_FRAME",
    "RESIZE",
    "STDERR",
    "STDIN",
    "STDOUT",
    "UPGRADE",
    "FrameError",
    "encode",
    "parse_header",
    "read_frame",
]

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
UPGRADE = "nbkube-stream"
MAX_FRAME = 1 << 20  # a larger length is a broken peer, not data
_HEADER = struct.Struct(">BI")


class FrameError(Exception):
    """The peer sent something that is not a frame."""


def encode(channel: int, payload: bytes) -> bytes:
    return _HEADER.pack(channel, len(payload)) + payload


def parse_header(header: bytes) -> tuple[int, int]:
    """(channel, length) of a 5-byte header; FrameError for a length past MAX_FRAME."""
    channel, length = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise FrameError(f"a frame of {length} bytes is larger than {MAX_FRAME}")
    return channel, length


def read_frame(f: BinaryIO) -> tuple[int, bytes] | None:
    """The next frame from a blocking buffered reader (a socket's makefile("rb")); None at the end
    of the stream (also mid-frame)."""
    header = f.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    channel, length = parse_header(header)
    payload = f.read(length) if length else b""
    return None if len(payload) < length else (channel, payload)
