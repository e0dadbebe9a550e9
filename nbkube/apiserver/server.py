"""The HTTP/1.1 server that puts the Kubernetes REST API in front of a Registry.

Plain HTTP with no authentication or authorization: it binds to 127.0.0.1 only, so exactly the
processes of this machine (kubectl, the official Python client, notebooks) can reach it. One thread
per connection (ThreadingHTTPServer); watches hold their thread while they stream and end when the
server stops.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from nbkube.api import wirejson
from nbkube.apiserver import discovery, openapi, podlogs, protobuf, resources, status
from nbkube.apiserver.resources import Request, Response, UnsupportedMediaType
from nbkube.apiserver.routing import parse_resource_path
from nbkube.apiserver.tables import wants_table
from nbkube.apiserver.watchstream import MAX_WATCH_SECONDS, watch_events
from nbkube.errors import BadRequest, NbkubeError, NotFound, TooLarge
from nbkube.registry.registry import Registry

__all__ = ["ApiServer", "MAX_BODY_BYTES"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 3 * 1024 * 1024  # the apiserver's request size limit


def _discovery(path: str) -> Any | None:
    """The static documents (version, discovery, health, openapi) served at `path`, if any."""
    p = path.rstrip("/") or "/"
    if p in ("/healthz", "/readyz", "/livez"):
        return "ok"
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
        return openapi.group_version_doc(gv) if gv else None
    if parts[:1] == ["api"] and len(parts) == 2:
        return discovery.resource_list(parts[1])
    if parts[:1] == ["apis"] and len(parts) == 3:
        return discovery.resource_list(f"{parts[1]}/{parts[2]}")
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    # -- responses ---------------------------------------------------------------------------------

    def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body.encode() if isinstance(body, str) else wirejson.dumps(body)
        self.send_response(code)
        self.send_header(
            "Content-Type", "text/plain; charset=utf-8" if isinstance(body, str) else "application/json"
        )
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise TooLarge(f"the request body is {length} bytes, more than the limit of {MAX_BODY_BYTES}")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise BadRequest("chunked request bodies are not supported; send Content-Length")
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return None
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if ctype == "application/vnd.kubernetes.protobuf" and self.command in ("POST", "PUT", "DELETE"):
            return protobuf.decode(raw)  # kubectl create namespace|configmap|secret, drain
        if ctype == "application/yaml" or not ctype.endswith("json"):
            # other protobuf bodies, CBOR and YAML are not decoded: 415 tells the client so
            raise UnsupportedMediaType(
                f'the body of the request was in an unknown format ("{ctype}"); send JSON'
            )
        try:
            return json.loads(raw)
        except ValueError as e:
            raise BadRequest(f"the request body is not valid JSON: {e}") from None

    # -- dispatch ----------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        route = None
        try:
            body = self._read_body() if self.command in ("POST", "PUT", "PATCH", "DELETE") else None
            if self.command == "GET":
                doc = _discovery(url.path)
                if doc is not None:
                    self._send(200, doc)
                    return
            route = parse_resource_path(url.path)
            if route is None:
                raise NotFound(f"the server could not find the requested resource ({url.path})")
            req = Request(
                self.command,
                route,
                query,
                body,
                self.headers.get("Content-Type") or "application/json",
                table=wants_table(self.headers.get("Accept") or ""),
            )
            if self.command == "GET" and not route.name and query.get("watch") in ("true", "1"):
                self._stream_watch(req)
                return
            if route.subresource == "log":
                if self.command != "GET":
                    raise resources.MethodNotAllowed(f"{self.command} is not allowed on pods/log")
                self._stream_logs(req)
                return
            resp: Response = resources.handle(self.server.registry, req)
            self._send(resp.code, resp.body, resp.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:
            if not isinstance(e, NbkubeError):
                log.exception("%s %s failed", self.command, self.path)
            code, body = status.status_for(e, route.info if route else None, route.name if route else "")
            self._send(code, body)

    def _stream_watch(self, req: Request) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            for event in watch_events(self.server.registry, req, self.server.stopping.is_set):
                data = wirejson.dumps(event) + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ValueError):
            pass  # the client went away (ValueError: the socket file was closed by stop())
        self.close_connection = True

    def _stream_logs(self, req: Request) -> None:
        r = req.route
        url = podlogs.agent_logs_url(self.server.registry, r.namespace, r.name, req.query)
        follow = req.query.get("follow") in ("true", "1")
        upstream = podlogs.open_logs(url, timeout=1.0 if follow else 30.0)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        deadline = time.monotonic() + MAX_WATCH_SECONDS
        try:
            while not self.server.stopping.is_set() and time.monotonic() < deadline:
                try:
                    chunk = upstream.read1(65536)
                except TimeoutError:
                    continue  # a quiet follow: look at `stopping` and the deadline again
                if not chunk:
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ValueError):
            pass  # the client stopped following
        finally:
            upstream.close()
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], registry: Registry):
        self.registry = registry
        self.stopping = threading.Event()
        super().__init__(addr, _Handler)


class ApiServer:
    """The Kubernetes API over `registry`, on http://127.0.0.1:PORT (port 0: any free port)."""

    def __init__(self, registry: Registry, host: str = "127.0.0.1", port: int = 0):
        if host not in ("127.0.0.1", "localhost"):
            # no authentication: loopback only, whatever the caller asks for
            raise BadRequest(
                f"the API server has no authentication and listens on 127.0.0.1 only, not {host}"
            )
        self.registry = registry
        self.host = "127.0.0.1"
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ApiServer:
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), self.registry)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"nbkube-apiserver-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()  # open watches end within their poll interval
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def write_kubeconfig(self, path: str, context: str = "nbkube") -> str:
        from nbkube.apiserver.kubeconfig import write_kubeconfig

        return write_kubeconfig(path, self.url, context)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ApiServer({self.url}, {'running' if self._server else 'stopped'})"
