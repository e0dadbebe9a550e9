"""The WebSocket half of `pods/exec`, `pods/attach` and `pods/portforward`: client <-> node agent.

Why: nbkube/apiserver/server.py upgrades these requests (aiohttp's `web.WebSocketResponse` does
the WebSocket framing) and hands them here once nbkube/apiserver/podstreams.py has checked them.
Each stream is two coroutines on the server's event loop and holds no thread: one carries the
client's messages to the agent, the other the agent's frames to the client. Toward the agent it
is the plain upgrade of nbkube/node/agentstream.py (one TCP connection per exec, attach or
forwarded port). When the client goes away its agent connection is closed, and the agent then
kills what the stream started; when the agent ends the session, the client gets the end Status on
channel 3 and a normal WebSocket close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from urllib.parse import urlsplit

from aiohttp import WSMessage, WSMsgType, web

from nbkube.api import wirejson
from nbkube.apiserver.podstreams import V5, StreamTarget, end_status
from nbkube.errors import NbkubeError
from nbkube.node import agentstream
from nbkube.node.agentclient import agent_refusal, agent_unreachable

__all__ = ["open_agent", "relay_channels", "relay_portforward"]

log = logging.getLogger(__name__)

_MAX_HEAD = 64 * 1024
_MAX_MESSAGE = 16 * 1024 * 1024  # one client message (a chunk of stdin or of forwarded bytes)

# How long after the upgrade the first message to a `v5.channel.k8s.io` client is held. client-go's
# WebSocket executor (kubectl exec since 1.30, which speaks v5) starts reading the connection in one
# goroutine while another creates its streams, and drops a message for a stream not yet created
# ("Unknown stream id 1, discarding message"). A command that ends within a millisecond (`kubectl
# exec pod -- echo hi` on a process node) then lost its output and its Status, and kubectl exited 0
# with nothing printed: about once in 200 execs with the cores busy. kube-apiserver's own relay to
# a kubelet and a container runtime takes longer than that before any output; holding the first
# message as long gives kubectl the same head start. Output that comes later is not delayed. Only
# Go clients are held (`holds_first_message`): v4 clients and other languages' clients (the
# official Python client, which speaks v5 and reads one plain WebSocket) get their output at once.
FIRST_MESSAGE_HOLD = 0.05

# client-go's default User-Agent, `<program>/<version> (<os>/<arch>) kubernetes/<commit>` (kubectl's
# among them), and Go's own when a program sets none
_CLIENT_GO_AGENT = re.compile(r"^\S+ \([^)]*\) kubernetes/\S+$")
_GO_AGENT_PREFIX = "Go-http-client/"


def holds_first_message(protocol: str, user_agent: str | None) -> bool:
    """Whether the first message to this exec/attach client waits FIRST_MESSAGE_HOLD: a v5 client
    that says it is client-go or a Go program. A client-go program that names itself otherwise is
    not recognised, and meets the race above (a command's instant output lost, rarely, under load)."""
    if protocol != V5 or not user_agent:
        return False
    return user_agent.startswith(_GO_AGENT_PREFIX) or _CLIENT_GO_AGENT.match(user_agent) is not None


async def open_agent(
    url: str, endpoint: str, headers: dict[str, str]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An upgraded connection to the node agent's `url`; its refusal (a JSON error answered
    instead of 101) or unreachability as an NbkubeError."""
    u = urlsplit(url)
    try:
        reader, writer = await asyncio.open_connection(u.hostname, u.port, limit=_MAX_HEAD)
    except OSError as e:
        raise agent_unreachable(endpoint, e) from None
    lines = [
        f"POST {u.path}?{u.query} HTTP/1.1",
        f"Host: {u.netloc}",
        "Connection: Upgrade",
        f"Upgrade: {agentstream.UPGRADE}",
        "Content-Length: 0",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        code = int(status_line.split(" ", 2)[1])
        if code == 101:
            return reader, writer
        length = 0
        for line in header_lines:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        body = await reader.readexactly(min(length, _MAX_HEAD))
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
        writer.close()
        raise agent_unreachable(endpoint, e) from None
    writer.close()
    raise agent_refusal(endpoint, code, body)


def _message_bytes(msg: WSMessage) -> bytes:
    """A client message as bytes: binary ones as they are, text ones (the Python client sends
    str data as text) as their UTF-8, as kube-apiserver reads both; b"" for control messages."""
    if msg.type == WSMsgType.BINARY:
        return bytes(msg.data)
    if msg.type == WSMsgType.TEXT:
        return str(msg.data).encode()
    return b""


def _socket_gone(e: BaseException) -> bool:
    return isinstance(e, ConnectionError | asyncio.IncompleteReadError | RuntimeError)


async def relay_channels(
    request: web.BaseRequest, target: StreamTarget, protocol: str
) -> web.WebSocketResponse:
    """exec/attach: open the agent's session, upgrade the client, relay until either ends.

    An agent's refusal (no such container, not running) raises NbkubeError before anything is
    sent to the client, which then gets it as an ordinary Status."""
    reader, writer = await open_agent(target.urls[0], target.endpoint, target.headers)
    ws = web.WebSocketResponse(protocols=(protocol,), max_msg_size=_MAX_MESSAGE)
    await ws.prepare(request)
    loop = asyncio.get_running_loop()
    held = holds_first_message(protocol, request.headers.get("User-Agent"))
    hold_until = loop.time() + FIRST_MESSAGE_HOLD if held else 0.0

    async def send(message: bytes) -> None:
        nonlocal hold_until
        if hold_until:
            await asyncio.sleep(max(0.0, hold_until - loop.time()))
            hold_until = 0.0
        await ws.send_bytes(message)

    async def from_client() -> None:
        try:
            async for msg in ws:
                data = _message_bytes(msg)
                if not data:
                    continue
                channel, payload = data[0], data[1:]
                if (channel == agentstream.STDIN and target.stdin) or channel == agentstream.RESIZE:
                    writer.write(agentstream.encode(channel, payload))
                elif channel == agentstream.CLOSE and protocol == V5:
                    writer.write(agentstream.encode(channel, payload[:1]))
                await writer.drain()
        except Exception as e:  # noqa: BLE001 - either side gone: the stream is over
            if not _socket_gone(e):
                log.exception("pods stream: relaying the client's input failed")
        finally:
            writer.close()  # the client is gone (or the agent is): the agent ends the session

    inbound = asyncio.create_task(from_client())
    try:
        while True:
            header = await reader.readexactly(5)
            channel, length = agentstream.parse_header(header)
            payload = await reader.readexactly(length)
            if (channel == agentstream.STDOUT and target.stdout) or (
                channel == agentstream.STDERR and target.stderr
            ):
                await send(bytes([channel]) + payload)
            elif channel == agentstream.ERROR:
                status = end_status(json.loads(payload), target.command)
                await send(bytes([agentstream.ERROR]) + wirejson.dumps(status))
                break
    except asyncio.IncompleteReadError:
        with contextlib.suppress(Exception):
            message = {"message": f"the node agent at {target.endpoint} ended the stream early"}
            await send(bytes([agentstream.ERROR]) + wirejson.dumps(end_status(message, ())))
    except (ConnectionError, RuntimeError, agentstream.FrameError, ValueError) as e:
        log.debug("pods stream ended: %s", e)
    finally:
        inbound.cancel()
        writer.close()
        with contextlib.suppress(Exception):
            await ws.close()
    return ws


async def relay_portforward(
    request: web.BaseRequest, target: StreamTarget, protocol: str
) -> web.WebSocketResponse:
    """portforward over `v4.channel.k8s.io`: one agent connection per requested port; a port
    the agent cannot reach gets its message on its error channel, as the kubelet sends it."""
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = []
    errors: list[str] = []
    for url in target.urls:
        try:
            conns.append(await open_agent(url, target.endpoint, target.headers))
            errors.append("")
        except NbkubeError as e:
            conns.append(None)
            errors.append(str(e))
    ws = web.WebSocketResponse(protocols=(protocol,), max_msg_size=_MAX_MESSAGE)
    await ws.prepare(request)

    async def to_client(i: int, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while data := await reader.read(65536):
                await ws.send_bytes(bytes([2 * i]) + data)

    async def from_client() -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            async for msg in ws:
                data = _message_bytes(msg)
                if not data:
                    continue
                channel = data[0]
                index = channel // 2
                conn = conns[index] if channel % 2 == 0 and index < len(conns) else None
                if conn is not None:
                    conn[1].write(data[1:])
                    await conn[1].drain()

    inbound: asyncio.Task[None] | None = None
    outbound: list[asyncio.Task[None]] = []
    try:
        for i, port in enumerate(target.ports):
            # each channel opens with its port number, so the client can match them up
            await ws.send_bytes(bytes([2 * i]) + port.to_bytes(2, "little"))
            await ws.send_bytes(bytes([2 * i + 1]) + port.to_bytes(2, "little"))
            if errors[i]:
                await ws.send_bytes(bytes([2 * i + 1]) + errors[i].encode())
        inbound = asyncio.create_task(from_client())
        outbound = [asyncio.create_task(to_client(i, c[0])) for i, c in enumerate(conns) if c is not None]
        # over when every pod connection has ended, or when the client has gone
        waiting: set[asyncio.Task[None]] = {inbound, *outbound}
        while outbound and not inbound.done():
            done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            outbound = [t for t in outbound if t not in done]
    except (ConnectionError, RuntimeError) as e:
        log.debug("port-forward stream ended: %s", e)
    finally:
        for t in (*outbound, *([inbound] if inbound else [])):
            t.cancel()
        for c in conns:
            if c is not None:
                c[1].close()
        with contextlib.suppress(Exception):
            await ws.close()
    return ws
