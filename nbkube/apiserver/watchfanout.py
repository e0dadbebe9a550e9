"""Watch fan-out: every open watch written from the event loop, each change encoded once.

Why: with W clients watching one kind, each change used to cost W JSON decodes, W encodings, W
coroutine wake-ups (each with its own timeout) and W awaited writes. Here:

- the registry hands every API watch the same decoded object for a change (`shared=True`), so
  `FrameCache` encodes it once per (event type, wire encoding, served version) and every watcher
  of it sends the same bytes;
- the store's wake-up of a watch only queues it in the `WatchPump`; one event-loop callback then
  drains every queued watch in turn and writes each one's pending events as one HTTP chunk, one
  `transport.write` (one TLS record and send) per watch per wake-up, with no await and no task
  switch per event;
- one timer (POLL_SECONDS) looks at every open watch's deadline, bookmarks and `stopping`, instead
  of a timeout per wait per watch.

A watch whose client reads slowly is left alone once its transport holds more than HIGH_WATER
bytes: its own coroutine awaits the transport's drain and hands it back. Nothing here knows aiohttp:
the server gives each watch its asyncio transport and awaits `Watcher.wait()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from nbkube.api import wirejson
from nbkube.apiserver import protobuf
from nbkube.apiserver.conversion import Converted, from_stored
from nbkube.apiserver.watchstream import BATCH, POLL_SECONDS, Outgoing, WatchStream

__all__ = ["DRAIN", "END", "FrameCache", "HIGH_WATER", "WatchPump", "Watcher", "encode_frame"]

log = logging.getLogger(__name__)

HIGH_WATER = 1 << 16  # bytes queued in a transport before a watch waits for its client
DRAIN = "drain"  # Watcher.wait(): the client is slow; await the transport's drain, then resume()
END = "end"  # Watcher.wait(): the stream is over (or the client went away); write the last chunk


def encode_frame(event: dict[str, Any], proto: bool, conv: Converted | None) -> bytes:
    """One watch event on the wire: a JSON line, or a length-prefixed protobuf WatchEvent."""
    if conv is not None:
        event = from_stored(conv, event)
    if proto:
        return protobuf.encode_watch_event(event)  # an object it cannot hold goes as JSON inside
    return wirejson.dumps(event) + b"\n"


class FrameCache:
    """Encoded events by (object identity, type, encoding, served version), for shared objects.

    The key holds the object's id and the entry the object itself, so the id cannot be reused by
    another object while the entry lives. Used from the event loop only. Bounded: the newest
    frames, at most `size` of them and `max_bytes` in all (a change reaches all its watchers
    within one pump, long before it would be dropped)."""

    def __init__(self, size: int = 2048, max_bytes: int = 16 << 20):
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._frames: dict[tuple[int, str, bool, str], tuple[Any, bytes]] = {}
        self.hits = 0
        self.misses = 0

    def frame(self, item: Outgoing, proto: bool, conv: Converted | None) -> bytes:
        event = item.event
        if not item.shared:
            return encode_frame(event, proto, conv)
        obj = event["object"]
        key = (id(obj), event["type"], proto, conv.info.api_version if conv is not None else "")
        hit = self._frames.get(key)
        if hit is not None and hit[0] is obj:
            self.hits += 1
            return hit[1]
        self.misses += 1
        data = encode_frame(event, proto, conv)
        if len(data) > self._max_bytes:
            return data
        frames = self._frames
        old = frames.pop(key, None)
        if old is not None:
            self._bytes -= len(old[1])
        while frames and (len(frames) >= self._size or self._bytes + len(data) > self._max_bytes):
            self._bytes -= len(frames.pop(next(iter(frames)))[1])  # the oldest: insertion order
        frames[key] = (obj, data)
        self._bytes += len(data)
        return data


class Watcher:
    """One open watch as the pump sees it: its stream, its transport and how to encode it."""

    __slots__ = ("conv", "proto", "queued", "signal", "stream", "transport", "_waiter")

    def __init__(
        self, stream: WatchStream, transport: asyncio.Transport, proto: bool, conv: Converted | None
    ):
        self.stream = stream
        self.transport = transport
        self.proto = proto
        self.conv = conv
        self.queued = False  # in the pump's ready queue (set from the store's producer thread too)
        self.signal = ""  # DRAIN or END, for the coroutine; "" while the pump writes
        self._waiter: asyncio.Future[str] | None = None

    def _tell(self, signal: str) -> None:
        self.signal = signal
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(signal)

    async def wait(self) -> str:
        """DRAIN or END, whichever the pump says first."""
        if self.signal:
            return self.signal
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            return await self._waiter
        finally:
            self._waiter = None


def _chunk(frames: list[bytes]) -> bytes:
    """The frames as one HTTP/1.1 chunk (the response is chunked; headers are already out)."""
    if len(frames) == 1:
        return b"%x\r\n%b\r\n" % (len(frames[0]), frames[0])
    size = sum(len(f) for f in frames)
    return b"".join([b"%x\r\n" % size, *frames, b"\r\n"])


class WatchPump:
    """Writes the pending events of every open watch from one event-loop callback per wake-up."""

    def __init__(self, loop: asyncio.AbstractEventLoop, frames: FrameCache | None = None):
        self._loop = loop
        self.frames = frames or FrameCache()
        self._ready: deque[Watcher] = deque()  # appended from any thread, drained on the loop
        self._scheduled = False
        self._open: set[Watcher] = set()
        self._ticker: asyncio.TimerHandle | None = None
        self._closed = False

    def add(self, w: Watcher) -> None:
        """Start writing `w` (on the loop, once its stream is open)."""
        self._open.add(w)
        if self._ticker is None:
            self._ticker = self._loop.call_later(POLL_SECONDS, self._tick)
        if w.stream.watch is not None:
            # called at once if events are already queued
            w.stream.watch.set_wakeup(lambda: self.wake(w))
        self.wake(w)  # the initial events, or an error

    def remove(self, w: Watcher) -> None:
        self._open.discard(w)
        if w.stream.watch is not None:
            w.stream.watch.set_wakeup(None)
        w._tell(END)

    def resume(self, w: Watcher) -> None:
        """After DRAIN: the transport has room again (an END said meanwhile stands)."""
        if w.signal == DRAIN:
            w.signal = ""
            self.wake(w)

    def wake(self, w: Watcher) -> None:
        """`w` may have something to send; safe from any thread."""
        if w.queued:
            return
        w.queued = True
        self._ready.append(w)
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop
            if not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        # cleared first: a wake-up from here on schedules another run, so none is lost
        self._scheduled = False
        ready = self._ready
        for _ in range(len(ready)):  # later arrivals go to the next run: every watch gets a turn
            w = ready.popleft()
            w.queued = False
            if w in self._open and not w.signal:
                try:
                    self._pump(w)
                except Exception:
                    log.exception("watch %s failed", w.stream.req.route.info.plural)
                    self._end(w)

    def _pump(self, w: Watcher) -> None:
        transport = w.transport
        if transport.is_closing():
            self._end(w)
            return
        items = w.stream.poll(limit=BATCH)
        if items:
            frame, proto, conv = self.frames.frame, w.proto, w.conv
            transport.write(_chunk([frame(item, proto, conv) for item in items]))
        if w.stream.ended:
            self._end(w)
        elif transport.get_write_buffer_size() > HIGH_WATER:
            w._tell(DRAIN)
        elif len(items) >= BATCH:
            self.wake(w)  # more may be waiting: after the others have had their turn

    def _end(self, w: Watcher) -> None:
        self._open.discard(w)
        w._tell(END)

    def _tick(self) -> None:
        """Every POLL_SECONDS: deadlines, bookmarks and `stopping` of the quiet watches."""
        self._ticker = None
        if self._closed or not self._open:
            return
        for w in list(self._open):
            self.wake(w)
        self._ticker = self._loop.call_later(POLL_SECONDS, self._tick)

    def close(self) -> None:
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        for w in list(self._open):
            self.remove(w)
