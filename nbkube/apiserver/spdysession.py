"""A SPDY/3.1 session, server side: the stream table, replies, pings, GOAWAY and close.

Why: nbkube/apiserver/spdy.py only turns frames into bytes and back; the streams kubectl opens
(port-forward's data/error pairs, exec's stdin/stdout/stderr/error/resize) need state: which
streams are open, which half is closed, and one writer so frames leave in the order their header
blocks were compressed. The session is transport-agnostic: bytes come in through feed() (from
aiohttp's upgraded connection or from WebSocket messages, cut anywhere) and go out through an
async `send` callable, one call per frame batch, from a single writer task.

What the server does, as kubelet's spdystream does for kubectl:
- every SYN_STREAM the client opens is answered at once with an empty SYN_REPLY (kubectl waits
  for it before it writes), then handed to `on_stream`;
- PINGs from the client are echoed (kubectl pings every few seconds to keep proxies from timing
  the connection out); SETTINGS and WINDOW_UPDATE are read and ignored;
- a stream's FIN ends its inbound half (read() returns b""), RST_STREAM ends both halves;
- GOAWAY, a broken frame or the transport's end closes every stream.

Deviation from SPDY/3.1: flow-control windows are neither enforced on what is received nor
honoured on what is sent. kubectl (spdystream) sends no WINDOW_UPDATE and does not count
windows either, so honouring a 64 KiB window would stall every stream after its first 64 KiB.
What bounds memory instead is backpressure both ways: write() waits while more than HIGH_WATER
bytes are queued for the transport, and when more than HIGH_WATER received bytes wait for their
streams' readers, `pause_reading(True)` stops reading the transport (TCP then holds the client
back) until the readers have taken half of them (`pause_reading(False)`). A stream whose reader
never reads can so hold up the others: kubectl's streams are all read by their relays.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nbkube.apiserver import spdy

__all__ = ["HIGH_WATER", "MAX_DATA", "Session", "Stream"]

log = logging.getLogger(__name__)

MAX_DATA = 32 * 1024  # bytes per DATA frame we send
HIGH_WATER = 1 << 20  # bytes queued for the transport before writers wait


class Stream:
    """One client-opened stream: its headers, what it received, and its two halves."""

    def __init__(self, session: Session, stream_id: int, headers: dict[str, str]):
        self.session, self.id, self.headers = session, stream_id, headers
        self._inbound: asyncio.Queue[bytes] = asyncio.Queue()
        self.remote_closed = False  # the client sent FIN (or RST)
        self.local_closed = False  # we sent FIN (or RST)
        self.reset_status: int | None = None

    async def read(self) -> bytes:
        """The next bytes the client sent on this stream; b"" once it has closed its half."""
        if self._inbound.empty() and self.remote_closed:
            return b""
        data = await self._inbound.get()
        if not data:
            self._inbound.put_nowait(b"")  # the end stays the end for later reads
        self.session._consumed(len(data))
        return data

    async def write(self, data: bytes) -> None:
        if self.local_closed:
            raise ConnectionResetError(f"SPDY stream {self.id} is closed for writing")
        for i in range(0, len(data), MAX_DATA):
            self.session.queue(spdy.DataFrame(self.id, data[i : i + MAX_DATA]))
        await self.session.drained()

    def close(self) -> None:
        """Half-close: FIN on our side (once); the client may still send."""
        if not self.local_closed:
            self.local_closed = True
            self.session.queue(spdy.DataFrame(self.id, b"", fin=True))
            self.session.forget_if_done(self)

    def reset(self, status: int = spdy.CANCEL) -> None:
        if not self.local_closed or not self.remote_closed:
            if not self.session.closed:
                self.session.queue(spdy.RstStream(self.id, status))
            self._ended(status)

    def _received(self, data: bytes, fin: bool) -> None:
        if data:
            self._inbound.put_nowait(data)
            self.session._buffered(len(data))
        if fin:
            self._remote_end()

    def _remote_end(self) -> None:
        if not self.remote_closed:
            self.remote_closed = True
            self._inbound.put_nowait(b"")
            self.session.forget_if_done(self)

    def _ended(self, status: int | None) -> None:
        self.reset_status = status
        self.local_closed = True
        self._remote_end()
        self.session.forget_if_done(self)


class Session:
    """The server side of one SPDY/3.1 connection. `on_stream(stream)` is called (on the event
    loop, synchronously) for each stream the client opens, after its SYN_REPLY is queued."""

    def __init__(
        self,
        send: Callable[[bytes], Awaitable[None]],
        on_stream: Callable[[Stream], None],
        pause_reading: Callable[[bool], None] | None = None,
    ):
        self._send, self._on_stream, self._pause = send, on_stream, pause_reading
        self._inbound_bytes = 0
        self.reading_paused = False
        self._encoder, self._decoder = spdy.Encoder(), spdy.Decoder()
        self.streams: dict[int, Stream] = {}
        self._last_client_id = 0
        self._out: collections.deque[spdy.Frame] = collections.deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self.closed = False
        self.error: str = ""  # why the session ended, when it was not a clean end
        self.done = asyncio.Event()  # set when the transport's input ended or the session closed
        self._writer = asyncio.create_task(self._write_loop())

    # -- inbound ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes from the client, cut anywhere."""
        if self.closed:
            return
        self._decoder.push(data)
        while not self.closed:
            try:
                frame = self._decoder.next()
                if frame is None:
                    return
                self._handle(frame)
            except spdy.FrameError as e:
                self._broken(e)

    def _buffered(self, n: int) -> None:
        self._inbound_bytes += n
        if self._inbound_bytes > HIGH_WATER and not self.reading_paused and self._pause is not None:
            self.reading_paused = True
            self._pause(True)

    def _consumed(self, n: int) -> None:
        self._inbound_bytes -= n
        if self.reading_paused and self._inbound_bytes <= HIGH_WATER // 2 and self._pause is not None:
            self.reading_paused = False
            self._pause(False)

    def feed_eof(self) -> None:
        """The transport's input ended: every stream ends with it."""
        for s in list(self.streams.values()):
            s._ended(None)
        self.done.set()

    def _broken(self, e: spdy.FrameError) -> None:
        if e.stream_id and not self._decoder.broken:
            log.info("SPDY stream %d reset: %s", e.stream_id, e)
            self.queue(spdy.RstStream(e.stream_id, e.status))
            stream = self.streams.get(e.stream_id)
            if stream is not None:
                stream._ended(e.status)
            return
        log.info("SPDY session ended: %s", e)
        self.error = str(e)
        self.queue(spdy.GoAway(self._last_client_id, spdy.GOAWAY_PROTOCOL_ERROR))
        self.close()

    def _handle(self, frame: spdy.Frame) -> None:
        if isinstance(frame, spdy.DataFrame):
            stream = self.streams.get(frame.stream_id)
            if stream is None:
                if frame.stream_id > self._last_client_id or frame.stream_id % 2 == 0:
                    self.queue(spdy.RstStream(frame.stream_id, spdy.INVALID_STREAM))
                return  # data racing a stream we have already ended: dropped, as the spec says
            if stream.remote_closed:
                self.queue(spdy.RstStream(frame.stream_id, spdy.STREAM_ALREADY_CLOSED))
                stream._ended(spdy.STREAM_ALREADY_CLOSED)
                return
            stream._received(frame.data, frame.fin)
        elif isinstance(frame, spdy.SynStream):
            self._opened(frame)
        elif isinstance(frame, spdy.RstStream):
            stream = self.streams.get(frame.stream_id)
            if stream is not None:
                stream._ended(frame.status)
        elif isinstance(frame, spdy.Ping):
            if frame.ping_id % 2 == 1:  # the client's (odd): echoed; ours (even) we never send
                self.queue(frame)
        elif isinstance(frame, spdy.GoAway):
            self.close()
        elif isinstance(frame, spdy.Headers):
            stream = self.streams.get(frame.stream_id)
            if stream is not None:
                stream.headers.update(frame.headers)
                if frame.fin:
                    stream._remote_end()
        elif isinstance(frame, spdy.SynReply):
            # we open no streams, so no reply can be for one of ours
            self.queue(spdy.RstStream(frame.stream_id, spdy.INVALID_STREAM))
        # Settings, WindowUpdate: read and ignored (see the module docstring)

    def _opened(self, frame: spdy.SynStream) -> None:
        sid = frame.stream_id
        if sid % 2 == 0 or sid <= self._last_client_id:
            raise spdy.FrameError(
                f"SYN_STREAM for stream {sid}: a client's new stream id must be odd and larger "
                f"than its last ({self._last_client_id})"
            )
        self._last_client_id = sid
        stream = Stream(self, sid, dict(frame.headers))
        self.streams[sid] = stream
        self.queue(spdy.SynReply(sid))
        if frame.fin:
            stream._remote_end()
        self._on_stream(stream)

    # -- outbound --------------------------------------------------------------------------

    def queue(self, frame: spdy.Frame) -> None:
        if self.closed and not isinstance(frame, spdy.GoAway):
            raise ConnectionResetError("the SPDY session is closed")
        self._out.append(frame)
        self._queued += len(frame.data) if isinstance(frame, spdy.DataFrame) else 16
        if self._queued > HIGH_WATER:
            self._drained.clear()
        self._wake.set()

    async def drained(self) -> None:
        """Wait while more than HIGH_WATER bytes are queued for the transport."""
        await self._drained.wait()

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._out:
                    batch: list[bytes] = []
                    size = 0
                    while self._out and size < 256 * 1024:
                        frame = self._out.popleft()
                        data = self._encoder.encode(frame)
                        batch.append(data)
                        size += len(data)
                        self._queued -= len(frame.data) if isinstance(frame, spdy.DataFrame) else 16
                    await self._send(b"".join(batch))
                    if self._queued <= HIGH_WATER:
                        self._drained.set()
                if self.closed:
                    return
        except (ConnectionError, RuntimeError) as e:
            log.debug("SPDY session: the transport went away: %s", e)
            self.closed = True
            for s in list(self.streams.values()):
                s._ended(None)
            self.done.set()
        finally:
            self._drained.set()  # writers waiting for room must not wait for a writer that is gone

    def forget_if_done(self, stream: Stream) -> None:
        if stream.local_closed and stream.remote_closed:
            self.streams.pop(stream.id, None)

    def close(self) -> None:
        """End every stream and stop after what is queued has been sent (see flush())."""
        if self.closed:
            return
        self.closed = True
        for s in list(self.streams.values()):
            s._ended(None)
        self._wake.set()
        self.done.set()

    async def flush(self, timeout: float = 10) -> None:
        """Wait (bounded) until the writer has sent what is queued and ended (after close())."""
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._writer), timeout)
        if not self._writer.done():
            self._writer.cancel()
