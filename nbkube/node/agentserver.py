"""The node agent's own small HTTP endpoint: container logs and exec, as the kubelet serves them.

`nbkube logs` and `nbkube exec` run in another process than the node agent that holds the
containers, so, as `kubectl logs` reaches the kubelet's port, they reach this server. It listens on
loopback only and writes its address into the Node's `nbkube.io/agent-endpoint` annotation, where
the CLI finds it. One server per node; a part of the node's kit, started after the agent has
registered the Node.

Loopback is open to every user of the machine, so every request must present the cluster's agent
credential (`Authorization: Bearer <token>`, nbkube/security/agentauth.py; the token file is 0600 in
the cluster's 0700 folder), as the kubelet only serves the API server's client certificate. Without
it the answer is 401 and nothing runs.

    GET  /logs/<namespace>/<pod>/<container>?tail=N&follow=1&limitBytes=N&since=EPOCH&timestamps=1&previous=1
                                                -> text (streamed with follow)
    POST /exec/<namespace>/<pod>/<container>   {"argv": [...]}  -> {"exitCode": n, "output": "..."}
    POST /stream/exec/<ns>/<pod>/<container>?command=..&stdin=1&tty=1   (Upgrade: nbkube-stream)
    POST /stream/attach/<ns>/<pod>/<container>?stdin=1&tty=1             (Upgrade: nbkube-stream)
    POST /stream/portforward/<ns>/<pod>/-?port=N                         (Upgrade: nbkube-stream)

The streaming endpoints answer 101 and then speak the frames of nbkube/node/agentstream.py (exec,
attach: the runtime's StreamSession, nbkube/node/runtime/session.py) or carry one TCP connection
to the pod's port (portforward); each holds one thread of this server (plus the session's readers)
for as long as it is open, and a caller that goes away ends what it started.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from nbkube.errors import BadRequest, NbkubeError, NotFound
from nbkube.node import agentstream
from nbkube.security.agentauth import token_matches

__all__ = ["AgentServer", "ENDPOINT_ANNOTATION"]

log = logging.getLogger(__name__)

ENDPOINT_ANNOTATION = "nbkube.io/agent-endpoint"
_MAX_EXEC_BODY = 64 * 1024


class AgentServer:
    """Serves logs and exec of the pods this node's runtime holds."""

    def __init__(self, api: Any, node_name: str, runtime: Any, host: str = "127.0.0.1", *, token: str):
        if not token:
            raise ValueError("the node agent server needs the cluster's agent credential")
        self.token = token
        self.api = api
        self.node_name = node_name
        self.runtime = runtime
        self.host = host
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"{self.host}:{self._server.server_address[1]}"

    def start(self) -> None:
        if self._server is not None:
            return
        server = ThreadingHTTPServer((self.host, 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name=f"agent-server-{self.node_name}", daemon=True
        )
        self._thread.start()
        try:
            self.api.patch(
                "Node",
                self.node_name,
                "",
                {"metadata": {"annotations": {ENDPOINT_ANNOTATION: self.endpoint}}},
            )
        except NbkubeError as exc:  # logs/exec stay unreachable from other processes; the node still runs
            log.warning("node %s: cannot publish the agent endpoint: %s", self.node_name, exc)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def pod_uid(self, namespace: str, name: str) -> str:
        pod = self.api.get("Pod", name, namespace)
        if (pod.get("spec") or {}).get("nodeName") != self.node_name:
            raise NotFound(f'pod "{name}" does not run on node {self.node_name}')
        return str(pod["metadata"]["uid"])


def _handler_for(server: AgentServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            log.debug("agent server: " + format, *args)

        def _authorized(self) -> bool:
            if token_matches(self.headers.get("Authorization"), server.token):
                return True
            # a body left unread would be taken for the next request on this connection
            self.close_connection = True
            self._error(401, "Unauthorized: the node agent needs the cluster's agent credential (Bearer)")
            return False

        def _target(self, verb: str) -> tuple[str, str, dict[str, list[str]]] | None:
            if not self._authorized():
                return None
            url = urlparse(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            if len(parts) != 4 or parts[0] != verb:
                self._error(404, f"no such endpoint: {url.path}")
                return None
            try:
                uid = server.pod_uid(parts[1], parts[2])
            except NbkubeError as exc:
                self._error(404, str(exc))
                return None
            return uid, parts[3], parse_qs(url.query)

        def _error(self, code: int, message: str) -> None:
            body = json.dumps({"message": message}).encode()
            self.send_response(code)
            if code == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="nbkube-node-agent"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            target = self._target("logs")
            if target is None:
                return
            uid, container, query = target
            try:
                tail = int(query["tail"][0]) if query.get("tail") else None
                limit = int(query["limitBytes"][0]) if query.get("limitBytes") else None
                options: dict[str, Any] = {"tail": tail, "follow": _flag(query, "follow")}
                # only what was asked for, so a runtime without an option is not handed it
                if query.get("since"):
                    options["since"] = float(query["since"][0])
                for name in ("timestamps", "previous"):
                    if _flag(query, name):
                        options[name] = True
                logs = server.runtime.logs(uid, container, **options)
            except ValueError as exc:
                self._error(400, f"logs: {exc}")
                return
            except BadRequest as exc:
                self._error(400, str(exc))
                return
            except (NbkubeError, OSError) as exc:
                self._error(404, str(exc))
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            chunks: Iterator[str] = iter([logs]) if isinstance(logs, str) else logs
            try:
                for chunk in chunks:
                    data = chunk.encode()
                    if limit is not None:  # limitBytes: the first N bytes, then the end
                        data, limit = data[:limit], limit - len(data[:limit])
                    self.wfile.write(data)
                    self.wfile.flush()
                    if limit == 0:
                        break
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped following
            finally:
                close = getattr(chunks, "close", None)
                if callable(close):
                    close()

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path.startswith("/stream/"):
                self._stream()
                return
            target = self._target("exec")
            if target is None:
                return
            uid, container, _query = target
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_EXEC_BODY:
                self._error(413, "exec request too large")
                return
            try:
                argv = json.loads(self.rfile.read(length) or b"{}").get("argv")
                if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
                    raise ValueError("argv must be a non-empty list of strings")
                code, output = server.runtime.exec(uid, container, argv)
            except ValueError as exc:
                self._error(400, str(exc))
                return
            except (NbkubeError, OSError) as exc:
                self._error(404, str(exc))
                return
            body = json.dumps({"exitCode": code, "output": output}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _stream(self) -> None:
            self.close_connection = True  # after an upgrade the connection is the stream's
            if not self._authorized():
                return
            url = urlparse(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            if len(parts) != 5 or parts[1] not in ("exec", "attach", "portforward"):
                self._error(404, f"no such endpoint: {url.path}")
                return
            if (self.headers.get("Upgrade") or "").lower() != agentstream.UPGRADE:
                self._error(400, f"{url.path} needs Upgrade: {agentstream.UPGRADE}")
                return
            verb, namespace, pod, container = parts[1:]
            query = parse_qs(url.query)
            try:
                uid = server.pod_uid(namespace, pod)
                opened = _open_stream(server.runtime, verb, uid, container, query)
            except NotFound as exc:
                self._error(404, str(exc))
                return
            except (NbkubeError, OSError, ValueError) as exc:
                self._error(400, str(exc))
                return
            self.send_response(101)
            self.send_header("Connection", "Upgrade")
            self.send_header("Upgrade", agentstream.UPGRADE)
            self.end_headers()
            self.wfile.flush()
            if isinstance(opened, socket.socket):
                _splice(self.connection, self.rfile, opened)
            else:
                _relay(self.connection, self.rfile, opened)

    return Handler


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return query.get(name, ["0"])[0] in ("1", "true")


def _open_stream(runtime: Any, verb: str, uid: str, container: str, query: dict[str, list[str]]) -> Any:
    """The runtime's session (exec, attach) or TCP connection (portforward) for one stream."""
    method = {"exec": "exec_stream", "attach": "attach", "portforward": "connect_port"}[verb]
    if not callable(getattr(runtime, method, None)):
        raise ValueError(f"the {runtime.name} runtime does not serve {verb}")
    if verb == "exec":
        argv = query.get("command") or []
        return runtime.exec_stream(uid, container, argv, stdin=_flag(query, "stdin"), tty=_flag(query, "tty"))
    if verb == "attach":
        return runtime.attach(uid, container, stdin=_flag(query, "stdin"), tty=_flag(query, "tty"))
    port = int((query.get("port") or ["0"])[0])
    if not 0 < port < 65536:
        raise ValueError(f"port must be 1-65535, got {port}")
    return runtime.connect_port(uid, port)


def _relay(conn: socket.socket, rfile: Any, session: Any) -> None:
    """Frames between the API server and a StreamSession until the session ends (then the end
    frame) or the API server goes away (then the session is killed)."""
    lock = threading.Lock()
    over = threading.Event()

    def send(channel: int, data: bytes) -> None:
        with lock, contextlib.suppress(OSError):
            conn.sendall(agentstream.encode(channel, data))

    def read() -> None:
        try:
            while (frame := agentstream.read_frame(rfile)) is not None:
                channel, data = frame
                if channel == agentstream.STDIN:
                    session.write(data)
                elif channel == agentstream.RESIZE:
                    size = json.loads(data)
                    session.resize(int(size.get("Width", 0)), int(size.get("Height", 0)))
                elif channel == agentstream.CLOSE and data[:1] == bytes([agentstream.STDIN]):
                    session.close_stdin()
        except (OSError, ValueError, agentstream.FrameError) as exc:
            log.debug("agent stream: the API server's side failed: %s", exc)
        finally:
            if not over.is_set():
                session.kill()  # the caller went away: what it started goes too

    reader = threading.Thread(target=read, name="agent-stream-in", daemon=True)
    reader.start()
    end: dict[str, Any]
    try:
        code = session.run(send)
        end = {"exitCode": code} if code is not None else {}
    except Exception as exc:  # noqa: BLE001 - the caller is told, then the stream ends
        log.exception("agent stream: the session failed")
        end = {"message": str(exc)}
    over.set()
    send(agentstream.ERROR, json.dumps(end).encode())
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    reader.join(5)


def _splice(conn: socket.socket, rfile: Any, pod: socket.socket) -> None:
    """Bytes both ways between the API server's connection and the pod's, until both ends end."""
    pod.settimeout(None)

    def down() -> None:  # pod -> API server
        with contextlib.suppress(OSError):
            while data := pod.recv(65536):
                conn.sendall(data)
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=down, name="agent-portforward", daemon=True)
    t.start()
    with contextlib.suppress(OSError, ValueError):
        while data := rfile.read1(65536):
            pod.sendall(data)
    with contextlib.suppress(OSError):
        # the API server's side is over (its client went away): so is the pod's
        pod.shutdown(socket.SHUT_RDWR)
    t.join()
    pod.close()
