"""`pods/portforward`, `pods/exec` and `pods/attach` over SPDY/3.1: kubectl <-> node agent.

Why: kubectl's port-forward speaks SPDY/3.1 (all versions; since 1.31 first tunnelled inside a
WebSocket with subprotocol `SPDY/3.1+portforward.k8s.io`, binary messages carrying the SPDY byte
stream, and as a plain `Upgrade: SPDY/3.1` otherwise), and kubectl 1.28/1.29 speak it for exec,
attach and cp too. nbkube/apiserver/wsstreams.py serves the WebSocket channel protocols; this
module serves the same relays to the node agent (nbkube/node/agentstream.py) over a SPDY session
(nbkube/apiserver/spdysession.py).

- Plain upgrade: after the checks of nbkube/apiserver/podstreams.py, the server answers `101
  Switching Protocols` with `Upgrade: SPDY/3.1` and the negotiated `X-Stream-Protocol-Version`
  through aiohttp (a StreamResponse of status 101 has no body framing), then takes the connection
  over: aiohttp's request handler feeds whatever arrives after the request to the parser given to
  `request.protocol.set_parser()` (as it does for its own WebSocket reader), and we write to the
  transport through the response's writer, which waits for the transport to drain.
- Port-forward: kubectl opens two streams per local connection, headers `streamtype` (error, then
  data), `port` and `requestid`; once both of a request id are open, one agent connection to the
  pod's port is relayed to the data stream; a port the agent cannot reach gets its message on the
  error stream, as the kubelet writes it. Deviation: the agent's port-forward protocol has no
  half-close, so the client closing its half of a data stream (FIN) ends the pod connection.
- Exec/attach (`v4.channel.k8s.io`, the only SPDY version served: its error stream carries the end
  as a metav1 Status, which gives kubectl the exit code): the client opens an error stream, then
  stdin, stdout, stderr and resize streams as asked for in the query; once all expected are
  open, frames relay as in wsstreams.relay_channels: stdin's FIN is the agent's stdin end of file,
  each JSON line on resize a resize, and the agent's end is written on the error stream before
  every stream is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable

from aiohttp import WSMsgType, web

from nbkube.api import wirejson
from nbkube.apiserver.podstreams import V4, StreamTarget, end_status, portforward_url
from nbkube.apiserver.spdysession import Session, Stream
from nbkube.apiserver.wsstreams import open_agent
from nbkube.errors import BadRequest, NbkubeError
from nbkube.node import agentstream

__all__ = [
    "PORTFORWARD_PROTOCOL",
    "TUNNEL_PROTOCOL",
    "choose_spdy_protocol",
    "serve_tunnel",
    "serve_upgrade",
]

log = logging.getLogger(__name__)

PORTFORWARD_PROTOCOL = "portforward.k8s.io"
TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
STREAMS_TIMEOUT = 30.0  # for the client to open every stream it announced (kubelet's default)
LINGER = 10.0  # after the end, for the client to close the connection itself
_MAX_MESSAGE = 16 * 1024 * 1024


def choose_spdy_protocol(offered: list[str], subresource: str) -> str:
    """The X-Stream-Protocol-Version to answer: the one this server speaks for `subresource`
    among those offered (header values, possibly comma-joined); BadRequest naming both."""
    wanted = [p.strip() for v in offered for p in v.split(",") if p.strip()]
    supported = PORTFORWARD_PROTOCOL if subresource == "portforward" else V4
    if supported in wanted:
        return supported
    raise BadRequest(
        f"pods/{subresource}: none of the requested stream protocols ({', '.join(wanted) or 'none'}) "
        f"is supported; this server speaks {supported} over SPDY/3.1"
    )


class _Parser:
    """What aiohttp's request handler feeds the bytes after an upgrade to (see set_parser)."""

    def __init__(self, session: Session):
        self.session = session

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.session.feed(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.session.feed_eof()


async def serve_upgrade(
    request: web.BaseRequest, target: StreamTarget, protocol: str, subresource: str
) -> web.StreamResponse:
    """The plain `Upgrade: SPDY/3.1` path: 101, then the session on the same connection."""
    agent = None
    if subresource != "portforward":
        # refusals (no such container) before the upgrade, as an ordinary Status
        agent = await open_agent(target.urls[0], target.endpoint, target.headers)
    resp = web.StreamResponse(
        status=101,
        headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": protocol},
    )
    resp.force_close()
    try:
        await resp.prepare(request)
    except BaseException:
        if agent is not None:
            agent[1].close()
        raise
    handler = _handler(target, subresource, agent)
    transport = request.transport

    def pause(paused: bool) -> None:
        if transport is not None and not transport.is_closing():
            transport.pause_reading() if paused else transport.resume_reading()

    session = Session(resp.write, handler.on_stream, pause)
    request.protocol.set_parser(_Parser(session))  # type: ignore[arg-type]  # duck-typed reader
    try:
        await handler.run(session)
    finally:
        session.close()
        if not _cancelled():
            await session.flush()
        if request.transport is not None:
            request.transport.close()
    return resp


async def serve_tunnel(request: web.BaseRequest, target: StreamTarget) -> web.WebSocketResponse:
    """Port-forward's SPDY session inside a WebSocket (`SPDY/3.1+portforward.k8s.io`)."""
    ws = web.WebSocketResponse(protocols=(TUNNEL_PROTOCOL,), max_msg_size=_MAX_MESSAGE)
    await ws.prepare(request)
    handler = _PortForward(target)
    room = asyncio.Event()
    room.set()
    session = Session(ws.send_bytes, handler.on_stream, lambda paused: room.clear() if paused else room.set())

    async def pump() -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    session.feed(bytes(msg.data))
                elif msg.type == WSMsgType.TEXT:
                    log.info("port-forward tunnel: a text message, where SPDY comes in binary ones: closing")
                    break
                await room.wait()  # the streams' readers are behind: read no further for now
        session.feed_eof()

    reader = asyncio.create_task(pump())
    try:
        await handler.run(session)
    finally:
        session.close()
        reader.cancel()
        if not _cancelled():
            await session.flush()
            with contextlib.suppress(Exception):
                await ws.close()
    return ws


def _handler(
    target: StreamTarget, subresource: str, agent: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None
) -> _PortForward | _Channels:
    if subresource == "portforward":
        return _PortForward(target)
    assert agent is not None
    return _Channels(target, *agent)


class _PortForward:
    """kubectl's port-forward streams: pairs of (error, data) per request id."""

    def __init__(self, target: StreamTarget):
        self.target = target
        self.pending: dict[str, dict[str, Stream]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def on_stream(self, stream: Stream) -> None:
        kind = stream.headers.get("streamtype", "")
        request_id = stream.headers.get("requestid", "")
        port = stream.headers.get("port", "")
        if kind not in ("data", "error") or not request_id or not port.isdigit() or not 0 < int(port) < 65536:
            log.info(
                "port-forward: stream %d refused: it needs streamtype data|error, a port and a requestid "
                "(headers: %s)",
                stream.id,
                stream.headers,
            )
            stream.reset()
            return
        pair = self.pending.setdefault(request_id, {})
        if kind in pair:
            log.info("port-forward: request %s opened a second %s stream", request_id, kind)
            stream.reset()
            return
        pair[kind] = stream
        if len(pair) == 2:
            del self.pending[request_id]
            self._spawn(self._forward(pair["data"], pair["error"], int(port)))
        else:
            self._spawn(self._expire(request_id))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _expire(self, request_id: str) -> None:
        await asyncio.sleep(STREAMS_TIMEOUT)
        pair = self.pending.pop(request_id, None)
        if pair:
            log.info(
                "port-forward: request %s opened only its %s stream in %gs",
                request_id,
                *pair,
                STREAMS_TIMEOUT,
            )
            for s in pair.values():
                s.reset()

    async def _forward(self, data: Stream, error: Stream, port: int) -> None:
        t = self.target
        try:
            reader, writer = await open_agent(portforward_url(t, port), t.endpoint, t.headers)
        except NbkubeError as e:
            with contextlib.suppress(ConnectionError):
                await error.write(f"error forwarding port {port} to pod {t.namespace}/{t.pod}: {e}".encode())
            error.close()
            data.close()
            return

        async def up() -> None:  # client -> pod; the client's FIN ends the pod connection
            with contextlib.suppress(ConnectionError, RuntimeError):
                while chunk := await data.read():
                    writer.write(chunk)
                    await writer.drain()
                if writer.can_write_eof():
                    writer.write_eof()

        inbound = asyncio.create_task(up())
        try:
            while chunk := await reader.read(65536):
                await data.write(chunk)
        except (ConnectionError, RuntimeError) as e:
            log.debug("port-forward to port %d ended: %s", port, e)
        finally:
            inbound.cancel()
            writer.close()
            if not data.session.closed:
                data.close()
                error.close()

    async def run(self, session: Session) -> None:
        """Until the client goes away (or the session breaks); then every forward ends."""
        try:
            await session.done.wait()
        finally:
            for task in list(self.tasks):
                task.cancel()
            if self.tasks and not _cancelled():
                await asyncio.wait(self.tasks, timeout=5)


class _Channels:
    """exec/attach streams (v4.channel.k8s.io over SPDY) relayed to the agent's session."""

    def __init__(self, target: StreamTarget, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.target, self.reader, self.writer = target, reader, writer
        self.expected = {"error"}
        self.expected |= {"stdin"} if target.stdin else set()
        self.expected |= {"stdout"} if target.stdout else set()
        self.expected |= {"stderr"} if target.stderr and not target.tty else set()
        self.expected |= {"resize"} if target.tty else set()
        self.streams: dict[str, Stream] = {}
        self.ready = asyncio.Event()

    def on_stream(self, stream: Stream) -> None:
        kind = stream.headers.get("streamtype", "")
        if kind not in self.expected or kind in self.streams:
            log.info(
                "pods stream: stream %d (%s) refused: expected one each of %s",
                stream.id,
                kind or "no streamtype",
                ", ".join(sorted(self.expected)),
            )
            stream.reset()
            return
        self.streams[kind] = stream
        if set(self.streams) == self.expected:
            self.ready.set()

    async def run(self, session: Session) -> None:
        tasks: set[asyncio.Task[object]] = set()
        try:
            try:
                await asyncio.wait_for(_first(self.ready.wait(), session.done.wait()), STREAMS_TIMEOUT)
            except TimeoutError:
                log.info(
                    "pods stream: the client opened %s of %s in %gs",
                    sorted(self.streams),
                    sorted(self.expected),
                    STREAMS_TIMEOUT,
                )
                return
            if not self.ready.is_set():
                return  # the client went away first
            relay = asyncio.create_task(self._relay())
            gone = asyncio.create_task(session.done.wait())
            tasks.update((relay, gone))
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if relay.done():
                relay.result()
                # the end is written: give the client a moment to read it and hang up itself
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(gone), LINGER)
        finally:
            for task in tasks:
                task.cancel()
            self.writer.close()  # the agent then ends what it started, if it has not ended

    async def _relay(self) -> None:
        s = self.streams
        inputs = [asyncio.create_task(self._stdin(s["stdin"]))] if "stdin" in s else []
        inputs += [asyncio.create_task(self._resize(s["resize"]))] if "resize" in s else []
        try:
            while True:
                header = await self.reader.readexactly(5)
                channel, length = agentstream.parse_header(header)
                payload = await self.reader.readexactly(length)
                if channel == agentstream.STDOUT and "stdout" in s:
                    await s["stdout"].write(payload)
                elif channel == agentstream.STDERR and "stderr" in s:
                    await s["stderr"].write(payload)
                elif channel == agentstream.ERROR:
                    await s["error"].write(
                        wirejson.dumps(end_status(json.loads(payload), self.target.command))
                    )
                    break
        except asyncio.IncompleteReadError:
            message = {"message": f"the node agent at {self.target.endpoint} ended the stream early"}
            with contextlib.suppress(ConnectionError):
                await s["error"].write(wirejson.dumps(end_status(message, ())))
        except (ConnectionError, RuntimeError, agentstream.FrameError, ValueError) as e:
            log.debug("pods stream ended: %s", e)
        finally:
            for task in inputs:
                task.cancel()
            for stream in s.values():
                if not stream.session.closed:
                    stream.close()

    async def _stdin(self, stream: Stream) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while chunk := await stream.read():
                self.writer.write(agentstream.encode(agentstream.STDIN, chunk))
                await self.writer.drain()
            # the client's end of stdin (its FIN) is the agent's
            self.writer.write(agentstream.encode(agentstream.CLOSE, bytes([agentstream.STDIN])))
            await self.writer.drain()

    async def _resize(self, stream: Stream) -> None:
        pending = b""
        with contextlib.suppress(ConnectionError, RuntimeError):
            while chunk := await stream.read():
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        self.writer.write(agentstream.encode(agentstream.RESIZE, line))
                await self.writer.drain()


def _cancelled() -> bool:
    """Whether this task is being cancelled (the server shutting down, aiohttp ending a handler
    whose client went away): clean up without waiting, or the event loop may close first."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _first(*aws: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
