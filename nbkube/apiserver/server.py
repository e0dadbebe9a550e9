"""The HTTP layer of the Kubernetes REST API: aiohttp in one background thread, in front of a Registry.

One asyncio event loop serves every connection. Plain requests are decoded, dispatched and encoded
in a bounded thread pool (the registry's store calls block); watches and followed logs are
coroutines that wait on the store's wakeup or the agent's socket, so an open watch holds no thread.
aiohttp gives TLS, streaming and WebSockets; nothing here knows what a Pod is: routing, resources,
watchstream and podlogs hold the resource logic and know nothing of aiohttp.

`pods/exec`, `pods/attach` and `pods/portforward` upgrade to a WebSocket (aiohttp's
`web.WebSocketResponse`) once nbkube/apiserver/podstreams.py has checked them; the relay to the
node agent is nbkube/apiserver/wsstreams.py.

It speaks HTTPS only, and every request passes the `Gate` first (authentication, then
authorization), as kube-apiserver's filter chain does (nbkube/apiserver/security.py is the gate).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl

import uvloop
from aiohttp import ClientError, ClientSession, ClientTimeout, web

from nbkube.api import wirejson
from nbkube.apiserver import (
    bodies,
    discovery,
    metrics_api,
    openapi,
    podlogs,
    podstreams,
    protobuf,
    resources,
    spdystreams,
    status,
    wsstreams,
)
from nbkube.apiserver.conversion import converted_for, from_stored, to_stored
from nbkube.apiserver.resources import Request
from nbkube.apiserver.routing import CONNECT_SUBRESOURCES, Route, parse_resource_path
from nbkube.apiserver.tables import wants_table
from nbkube.apiserver.watchfanout import DRAIN, Watcher, WatchPump
from nbkube.apiserver.watchstream import WatchStream
from nbkube.errors import BadRequest, NbkubeError, NotFound, TooLarge
from nbkube.node.agentclient import agent_refusal, agent_unreachable
from nbkube.registry.registry import Registry

__all__ = ["ApiServer", "Gate", "MAX_BODY_BYTES", "RequestContext"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = bodies.MAX_BODY_BYTES
_WORKERS = 16  # concurrent blocking requests; watches and log follows do not take one
_HEALTH = ("/healthz", "/readyz", "/livez")


@dataclass
class RequestContext:
    """What the gate learns about one request: who sent it (set by `Gate.authenticate`)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    peer_cert: bytes | None = None  # the client certificate (DER) the TLS handshake verified
    user: Any = None
    warnings: list[str] = field(default_factory=list)
    # every `Impersonate-Group` header (`headers` keeps one value per name)
    impersonate_groups: list[str] = field(default_factory=list)


class Gate(Protocol):
    """Authentication and authorization of each request (see nbkube.apiserver.security)."""

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The server's TLS: its certificate, and the CA its clients' certificates must come from."""
        ...

    def write_kubeconfig(self, path: str, server_url: str, *, context: str = "nbkube") -> str:
        """An admin kubeconfig for this server, written 0600."""
        ...

    def stop(self) -> None: ...

    def authenticate(self, ctx: RequestContext) -> None:
        """Set `ctx.user`, or raise Unauthorized (401)."""
        ...

    def authorize(self, ctx: RequestContext, route: Route | None) -> None:
        """Raise Forbidden (403) unless `ctx.user` may do what the request asks."""
        ...

    def handle(self, ctx: RequestContext, route: Route, req: Request) -> resources.Response | None:
        """Answer requests that need the caller's identity (reviews, tokens), or None."""
        ...


def _static_document(path: str, accept: str = "") -> Any | None:
    """The static documents (version, discovery, health, openapi) served at `path`, if any: a JSON
    value, or an `_Outcome` when the body is already encoded or `accept` picks another media type
    (aggregated discovery, the protobuf /openapi/v2)."""
    p = path.rstrip("/") or "/"
    if p in _HEALTH:
        return "ok"
    if p in ("/api", "/apis") and (agg := discovery.aggregated_version(accept)) is not None:
        body = wirejson.dumps(discovery.aggregated(p == "/api", agg))
        return _Outcome(200, body, discovery.aggregated_content_type(agg))
    if p == "/openapi/v2":
        if "protobuf" in accept:
            return _Outcome(200, openapi.v2_protobuf(), openapi.V2_PROTOBUF)
        return _Outcome(200, openapi.v2_json())
    static: dict[str, Any] = {
        "/version": discovery.version,
        "/api": discovery.api_versions,
        "/apis": discovery.api_group_list,
        "/openapi/v3": openapi.root,
    }
    if p in static:
        return static[p]()
    parts = [x for x in p.split("/") if x]
    if parts[:2] == ["openapi", "v3"] and len(parts) > 2:
        rest = parts[2:]
        gv = rest[1] if rest[0] == "api" and len(rest) == 2 else "/".join(rest[1:]) if len(rest) == 3 else ""
        doc = openapi.group_version_json(gv) if gv else None
        return None if doc is None else _Outcome(200, doc)
    if parts[:1] == ["api"] and len(parts) == 2:
        return discovery.resource_list(parts[1])
    if parts[:1] == ["apis"] and len(parts) == 3:
        return discovery.resource_list(f"{parts[1]}/{parts[2]}")
    return None


@dataclass
class _Outcome:
    """What the blocking part of a request decided: a finished answer, or a stream to start."""

    code: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: str = ""  # "watch", "log" or "connect": the coroutine continues with `req`
    req: Request | None = None


def _encode(code: int, body: Any, headers: dict[str, str] | None = None, accept: str = "") -> _Outcome:
    """The answer in the encoding the client's Accept header prefers: protobuf when it asks for it
    and the schema holds the object, else JSON (406 when the client takes no JSON)."""
    if isinstance(body, str):
        return _Outcome(code, body.encode(), "text/plain; charset=utf-8", dict(headers or {}))
    proto, json_ok = protobuf.negotiate(accept)
    if proto and isinstance(body, dict):
        try:
            return _Outcome(code, protobuf.encode(body), protobuf.CONTENT_TYPE, dict(headers or {}))
        except protobuf.NotEncodable as e:
            if not json_ok:
                return _encode(406, status.status_for(protobuf.NotAcceptable(str(e)), None, "")[1], None, accept)
            log.debug("answering JSON: %s", e)
    return _Outcome(code, wirejson.dumps(body), "application/json", dict(headers or {}))


class _Service:
    """The request handling of one ApiServer; lives on the server's event loop."""

    def __init__(self, registry: Registry, gate: Gate, stopping: threading.Event):
        self.registry = registry
        self.gate = gate
        self.stopping = stopping
        self.pool = concurrent.futures.ThreadPoolExecutor(_WORKERS, thread_name_prefix="nbkube-api")
        self.session: ClientSession | None = None  # to the node agents, opened on first use
        self.pump: WatchPump | None = None  # writes every open watch; made on the loop, on first use

    # -- the blocking part ---------------------------------------------------------------------------

    def decide(self, ctx: RequestContext, raw: bytes, content_type: str) -> _Outcome:
        """Authenticate, route, authorize and (for plain requests) answer; runs in the pool."""
        route: Route | None = None
        try:
            if ctx.path.rstrip("/") not in _HEALTH:
                self.gate.authenticate(ctx)
            if ctx.method in ("GET", "HEAD"):
                doc = _static_document(ctx.path, ctx.headers.get("accept", ""))
                if doc is not None:
                    if ctx.path.rstrip("/") not in _HEALTH:
                        self.gate.authorize(ctx, None)
                    # JSON (or the OpenAPI v2 protobuf answer made for it): no static document as k8s protobuf
                    return doc if isinstance(doc, _Outcome) else _encode(200, doc)
            route = parse_resource_path(ctx.path)
            if route is None:
                raise NotFound(f"the server could not find the requested resource ({ctx.path})")
            self.gate.authorize(ctx, route)
            body = bodies.decode(raw, content_type, ctx.method)
            req = Request(
                "GET" if ctx.method == "HEAD" else ctx.method,
                route,
                ctx.query,
                body,
                content_type or "application/json",
                table=wants_table(ctx.headers.get("accept", "")),
                user_agent=ctx.headers.get("user-agent", ""),
            )
            conv = converted_for(route.served_version, route.info.plural) if route.served_version else None
            if conv is not None:
                req.body = to_stored(conv, req.method, req.body)
            if ctx.method == "GET" and not route.name and ctx.query.get("watch") in ("true", "1") and not metrics_api.is_metrics(req):
                return _Outcome(stream="watch", req=req)
            if route.subresource == "log":
                if ctx.method != "GET":
                    raise resources.MethodNotAllowed(f"{ctx.method} is not allowed on pods/log")
                return _Outcome(stream="log", req=req)
            if route.subresource in CONNECT_SUBRESOURCES:
                if ctx.method not in ("GET", "POST"):
                    raise resources.MethodNotAllowed(
                        f"{ctx.method} is not allowed on pods/{route.subresource}"
                    )
                return _Outcome(stream="connect", req=req)
            answer = (
                metrics_api.handle(self.registry, req, ctx.user)
                if metrics_api.is_metrics(req)
                else self.gate.handle(ctx, route, req)
            )
            if answer is None:
                answer = resources.handle(self.registry, req)
            if conv is not None:
                answer.body = from_stored(conv, answer.body)
            headers = dict(answer.headers)
            if ctx.warnings:
                headers["Warning"] = ", ".join(f'299 - "{w}"' for w in ctx.warnings)
            return _encode(answer.code, answer.body, headers, ctx.headers.get("accept", ""))
        except Exception as e:
            return self.failure(e, ctx, route)

    @staticmethod
    def failure(e: BaseException, ctx: RequestContext, route: Route | None) -> _Outcome:
        if not isinstance(e, NbkubeError):
            log.exception("%s %s failed", ctx.method, ctx.path)
        code, body = status.status_for(e, route.info if route else None, route.name if route else "")
        headers = {"WWW-Authenticate": 'Bearer realm="nbkube"'} if code == 401 else {}
        return _encode(code, body, headers, ctx.headers.get("accept", ""))

    # -- the event-loop part -------------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        ctx = RequestContext(
            request.method,
            request.path,
            dict(parse_qsl(request.query_string, keep_blank_values=True)),
            {k.lower(): v for k, v in request.headers.items()},
            _peer_certificate(request),
            impersonate_groups=request.headers.getall("Impersonate-Group", []),
        )
        loop = asyncio.get_running_loop()
        try:
            raw = await _read_body(request)
        except NbkubeError as e:
            out = self.failure(e, ctx, None)
        else:
            out = await loop.run_in_executor(
                self.pool, self.decide, ctx, raw, request.headers.get("Content-Type", "")
            )
        if out.stream == "watch":
            assert out.req is not None
            return await self.stream_watch(request, out.req)
        if out.stream == "log":
            assert out.req is not None
            return await self.stream_logs(request, ctx, out.req)
        if out.stream == "connect":
            assert out.req is not None
            return await self.stream_connect(request, ctx, out.req)
        return self.response(request, out)

    @staticmethod
    def response(request: web.BaseRequest, out: _Outcome) -> web.Response:
        return web.Response(
            status=out.code,
            body=out.body if request.method != "HEAD" else None,
            headers={"Content-Type": out.content_type, **out.headers},
        )

    async def stream_watch(self, request: web.BaseRequest, req: Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        if self.pump is None:
            self.pump = WatchPump(loop)
        stream = WatchStream(self.registry, req, self.stopping.is_set)
        r = req.route
        conv = converted_for(r.served_version, r.info.plural) if r.served_version else None
        proto = not req.table and protobuf.negotiate(request.headers.get("Accept", ""))[0]
        ctype = protobuf.WATCH_CONTENT_TYPE if proto else "application/json"
        resp = web.StreamResponse(status=200, headers={"Content-Type": ctype})
        resp.enable_chunked_encoding()
        await resp.prepare(request)  # the headers go out now: the pump writes chunks after them
        watcher: Watcher | None = None
        try:
            # the list and the store watch: blocking I/O, so in the pool
            await loop.run_in_executor(self.pool, stream.open)
            transport = request.transport
            if transport is None or transport.is_closing():
                return resp  # the client went away meanwhile
            watcher = Watcher(stream, transport, proto, conv)
            self.pump.add(watcher)
            while await watcher.wait() == DRAIN:
                await resp.drain()
                self.pump.resume(watcher)
            if not transport.is_closing():
                await resp.write_eof()
        except ConnectionResetError:
            pass  # the client went away
        finally:
            if watcher is not None:
                self.pump.remove(watcher)
            stream.close()  # cancels the registry watch
        return resp

    async def stream_logs(self, request: web.BaseRequest, ctx: RequestContext, req: Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        r = req.route
        try:
            target = await loop.run_in_executor(
                self.pool, podlogs.agent_logs_request, self.registry, r.namespace, r.name, req.query
            )
        except Exception as e:
            return self.response(request, self.failure(e, ctx, r))
        if self.session is None:
            self.session = ClientSession(timeout=ClientTimeout(total=None, sock_connect=10))
        try:
            upstream = await self.session.get(target.url, headers=target.headers)
        except (ClientError, OSError) as e:
            return self.response(request, self.failure(agent_unreachable(target.endpoint, e), ctx, r))
        async with upstream:
            if upstream.status != 200:
                refusal = agent_refusal(target.endpoint, upstream.status, await upstream.read())
                return self.response(request, self.failure(refusal, ctx, r))
            resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            try:
                # no read timeout: a followed log may be silent for as long as the client waits
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
            except (ConnectionResetError, ClientError):
                pass  # the client stopped following, or the agent went away
        return resp

    async def stream_connect(
        self, request: web.BaseRequest, ctx: RequestContext, req: Request
    ) -> web.StreamResponse:
        """exec, attach, portforward: checked (in the pool), then upgraded and relayed."""
        loop = asyncio.get_running_loop()
        r = req.route
        query = list(request.query.items())  # every value: exec repeats `command`
        try:
            # the pod and container first, as kube-apiserver: kubectl retries a refused WebSocket
            # with SPDY, and should hear about a missing container either way
            target = await loop.run_in_executor(
                self.pool, podstreams.stream_target, self.registry, r.namespace, r.name, r.subresource, query
            )
            if request.headers.get("Upgrade", "").lower().startswith("spdy/"):
                spdy_protocol = spdystreams.choose_spdy_protocol(
                    request.headers.getall("X-Stream-Protocol-Version", []), r.subresource
                )
                return await spdystreams.serve_upgrade(request, target, spdy_protocol, r.subresource)
            protocol = podstreams.choose_protocol(
                request.headers.get("Sec-WebSocket-Protocol", ""), r.subresource
            )
            if (
                protocol == podstreams.SPDY_TUNNEL
                and web.WebSocketResponse(protocols=(protocol,)).can_prepare(request).ok
            ):
                return await spdystreams.serve_tunnel(request, target)
            if r.subresource == "portforward" and not target.ports:
                raise BadRequest("at least one port must be specified (ports=N)")
            if not web.WebSocketResponse(protocols=(protocol,)).can_prepare(request).ok:
                raise BadRequest(
                    f"Upgrade request required: pods/{r.subresource} is served over WebSocket ({protocol})"
                )
            if r.subresource == "portforward":
                return await wsstreams.relay_portforward(request, target, protocol)
            return await wsstreams.relay_channels(request, target, protocol)
        except NbkubeError as e:
            return self.response(request, self.failure(e, ctx, r))

    async def close(self) -> None:
        if self.pump is not None:
            self.pump.close()
        if self.session is not None:
            await self.session.close()
        self.pool.shutdown(wait=False, cancel_futures=True)


async def _read_body(request: web.BaseRequest) -> bytes:
    if request.method not in ("POST", "PUT", "PATCH", "DELETE") or not request.can_read_body:
        return b""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise TooLarge(
            f"the request body is {request.content_length} bytes, more than the limit of {MAX_BODY_BYTES}"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise TooLarge(f"the request body is more than the limit of {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _peer_certificate(request: web.BaseRequest) -> bytes | None:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return bytes(der) if der else None


class ApiServer:
    """The Kubernetes API over `registry` on https://HOST:PORT (port 0: a free port, chosen by the
    kernel), behind `gate`'s TLS, authentication and authorization."""

    def __init__(self, registry: Registry, gate: Gate, host: str = "127.0.0.1", port: int = 0):
        self.registry = registry
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self.gate = gate
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.ServerRunner | None = None
        self._service: _Service | None = None
        self.stop_hooks: list[Callable[[], None]] = []  # run once on stop (serve() forgets its record)

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def start(self) -> ApiServer:
        if self._thread is not None:
            return self
        self._stopping.clear()
        loop = uvloop.new_event_loop()  # its TLS and sockets in C: HTTPS costs little over HTTP
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop = loop
        self._thread = threading.Thread(
            target=self._run, args=(loop, started), name="nbkube-apiserver", daemon=True
        )
        self._thread.start()
        try:
            started.result(timeout=15)
        except BaseException:
            self.stop()
            raise
        return self

    def _run(self, loop: asyncio.AbstractEventLoop, started: concurrent.futures.Future[None]) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._open())
        except BaseException as e:
            started.set_exception(e)
            loop.close()
            return
        started.set_result(None)
        loop.run_forever()
        loop.run_until_complete(self._close())
        loop.close()

    async def _open(self) -> None:
        service = _Service(self.registry, self.gate, self._stopping)
        server = web.Server(service.handle, handler_cancellation=True, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self.gate.ssl_context, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise BadRequest(f"the API server cannot listen on {self.host}:{self.port}: {e.strerror}") from None
        sockets = [s for s in (runner.addresses or [])]
        self.port = int(sockets[0][1]) if sockets else self.port
        self._service, self._runner = service, runner

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._service is not None:
            await self._service.close()
        self._runner = self._service = None

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        self._stopping.set()  # open watches end within POLL_SECONDS
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = self._loop = None
        self.gate.stop()
        hooks, self.stop_hooks = self.stop_hooks, []
        for hook in hooks:
            hook()

    def write_kubeconfig(self, path: str, context: str = "nbkube") -> str:
        """An admin kubeconfig (client certificate of the cluster's CA) for this server, 0600."""
        return self.gate.write_kubeconfig(path, self.url, context=context)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ApiServer({self.url}, {'running' if self._thread else 'stopped'})"

