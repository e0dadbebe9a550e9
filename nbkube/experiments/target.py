"""Where the probe sends its requests: an explicit (host, port), or a Service resolved on the cluster.

Who calls it: failover(), rollout() and `nbkube demo`. With a real runtime (process or docker) a
Service name resolves through `cluster.service_address(namespace, name, port)`, an address on this
machine that the cluster's proxy serves. With `runtime="sim"` nothing listens (sim pods are no
processes), so `ServiceStandIn` answers for the Service the way the userspace proxy would: round
robin over the Endpoints' ready addresses, each answer the pod's name, and a failure when the chosen
pod's node has been killed (its agent has a fault) or no endpoint is ready. It reads the same
Endpoints object the proxy watches, so what the experiment measures still comes from the control
plane's decisions.
"""

from __future__ import annotations

import http.server
import itertools
import threading
from collections.abc import Callable
from typing import Any

from nbkube.api.meta import Obj
from nbkube.errors import BadRequest, NotFound

__all__ = ["ProbeTarget", "ServiceStandIn", "resolve_target", "parse_service_ref", "default_runtime"]

Address = tuple[str, int]


def parse_service_ref(ref: str, namespace: str = "default") -> tuple[str, str, int | None]:
    """ "name", "ns/name", "name:port" or "ns/name:port" -> (namespace, name, port or None)."""
    text = ref.strip()
    if text.startswith(("svc/", "service/", "services/")):
        text = text.split("/", 1)[1]
    port: int | None = None
    if ":" in text:
        text, _, port_text = text.rpartition(":")
        if not port_text.isdigit():
            raise BadRequest(f"probe {ref!r}: port {port_text!r} is not a number")
        port = int(port_text)
    ns, _, name = text.rpartition("/")
    if not name:
        raise BadRequest(f"probe {ref!r}: expected a Service name, ns/name or (host, port)")
    return ns or namespace, name, port


class ServiceStandIn:
    """A loopback HTTP server answering for one Service of a sim cluster (see the module docstring)."""

    def __init__(
        self,
        api: Any,
        namespace: str,
        name: str,
        *,
        alive: Callable[[Obj], bool] | None = None,
        host: str = "127.0.0.1",
    ):
        self.api, self.namespace, self.name = api, namespace, name
        self.alive = alive or (lambda _pod: True)
        self._counter = itertools.count()
        self._lock = threading.Lock()
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                code, body = standin.answer()
                data = (body + "\n").encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return  # a probe at 20/s must not flood stderr

        self._server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def address(self) -> Address:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def _ready_pods(self) -> list[str]:
        try:
            ep = self.api.get("Endpoints", self.name, self.namespace)
        except NotFound:
            return []
        names: list[str] = []
        for subset in ep.get("subsets") or []:
            for addr in subset.get("addresses") or []:
                ref = addr.get("targetRef") or {}
                if ref.get("name"):
                    names.append(str(ref["name"]))
        return sorted(set(names))

    def answer(self) -> tuple[int, str]:
        names = self._ready_pods()
        if not names:
            return 503, "no ready endpoints"
        with self._lock:
            pick = names[next(self._counter) % len(names)]
        try:
            pod = self.api.get("Pod", pick, self.namespace)
        except NotFound:
            return 502, f"{pick}: gone"
        if not self.alive(pod):
            return 502, f"{pick}: no answer (its node is down)"
        return 200, pick

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)


def _agent_alive(cluster: Any) -> Callable[[Obj], bool]:
    """A pod answers when its node's in-process agent has no injected fault."""

    def alive(pod: Obj) -> bool:
        node = (pod.get("spec") or {}).get("nodeName") or ""
        agent = (getattr(cluster, "agents", None) or {}).get(node)
        return agent is None or getattr(agent, "fault", None) is None

    return alive


class ProbeTarget:
    """An address to probe, and whatever must be closed when the experiment ends."""

    def __init__(self, address: Address, label: str, standin: ServiceStandIn | None = None):
        self.address = address
        self.label = label
        self.standin = standin

    def __repr__(self) -> str:
        return f"ProbeTarget({self.label} at {self.address[0]}:{self.address[1]})"

    def close(self) -> None:
        if self.standin is not None:
            self.standin.close()
            self.standin = None

    def __enter__(self) -> ProbeTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _service_port(svc: Obj, port: int | None, ref: str) -> int:
    ports = [int(p.get("port") or 0) for p in (svc.get("spec") or {}).get("ports") or []]
    if not ports:
        raise BadRequest(f"probe {ref!r}: the Service has no ports")
    if port is None:
        return ports[0]
    if port not in ports:
        raise BadRequest(f"probe {ref!r}: the Service has no port {port} (it has {ports})")
    return port


def resolve_target(cluster: Any, probe: Any, namespace: str = "default") -> ProbeTarget:
    """(host, port) as is; a Service name through the cluster (or a stand-in on a sim cluster)."""
    if isinstance(probe, ProbeTarget):
        return probe
    if isinstance(probe, tuple | list) and len(probe) == 2:
        host, port = probe
        if not isinstance(host, str) or not isinstance(port, int) or not 0 < port < 65536:
            raise BadRequest(f"probe {probe!r}: expected (host: str, port: int)")
        return ProbeTarget((host, port), f"{host}:{port}")
    if not isinstance(probe, str):
        raise BadRequest(f"probe {probe!r}: expected a Service name or (host, port)")
    ns, name, port = parse_service_ref(probe, namespace)
    try:
        svc = cluster.api.get("Service", name, ns)
    except NotFound:
        raise BadRequest(f"probe {probe!r}: no Service {ns}/{name}") from None
    port = _service_port(svc, port, probe)
    if getattr(cluster, "runtime_name", "") == "sim":
        standin = ServiceStandIn(cluster.api, ns, name, alive=_agent_alive(cluster))
        return ProbeTarget(standin.address, f"service {ns}/{name}:{port} (sim stand-in)", standin)
    resolver = getattr(cluster, "service_address", None)
    if resolver is None:
        raise BadRequest(f"probe {probe!r}: this cluster cannot map a Service to a local address")
    host, local_port = resolver(name=name, port=port, namespace=ns)
    return ProbeTarget((str(host), int(local_port)), f"service {ns}/{name}:{port}")


def default_runtime(wanted: str = "auto") -> tuple[str, str]:
    """(runtime name, one line saying why) for the rootless default: "process" unless "sim" is
    asked for."""
    if wanted not in ("auto", "process", "sim"):
        raise BadRequest(f"runtime {wanted!r}: expected auto, process or sim")
    if wanted == "sim":
        return "sim", "runtime sim (asked for): pods are simulated; a stand-in answers for the Service"
    return "process", "runtime process: each pod is a host process on its own loopback IP"
