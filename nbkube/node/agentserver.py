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

    GET  /logs/<namespace>/<pod>/<container>?tail=N&follow=1   -> text (streamed with follow)
    POST /exec/<namespace>/<pod>/<container>   {"argv": [...]}  -> {"exitCode": n, "output": "..."}
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from nbkube.errors import NbkubeError, NotFound
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
            tail = int(query["tail"][0]) if query.get("tail") else None
            follow = query.get("follow", ["0"])[0] == "1"
            try:
                logs = server.runtime.logs(uid, container, tail=tail, follow=follow)
            except (NbkubeError, OSError) as exc:
                self._error(404, str(exc))
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            chunks: Iterator[str] = iter([logs]) if isinstance(logs, str) else logs
            try:
                for chunk in chunks:
                    self.wfile.write(chunk.encode())
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped following
            finally:
                close = getattr(chunks, "close", None)
                if callable(close):
                    close()

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
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

    return Handler
