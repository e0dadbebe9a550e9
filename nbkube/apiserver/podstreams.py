"""`pods/exec`, `pods/attach`, `pods/portforward`: what a stream asks for, checked before it opens.

kube-apiserver answers these by upgrading the connection and relaying it to the kubelet of the
pod's node; nbkube's API server does the same with the pod's node agent (the relay is
nbkube/apiserver/wsstreams.py, the agent's side nbkube/node/agentstream.py). Everything that can be
refused is refused here, before the upgrade, as an ordinary Status (400 for a missing container, a
pod that has finished or is not placed yet, no command, an unknown channel protocol), so a client
sees the same errors kube-apiserver gives.

Channel protocols (the WebSocket subprotocol the client offers):
- exec and attach: `v5.channel.k8s.io` (kubectl >= 1.30; adds channel 255, a client's end of
  stdin) and `v4.channel.k8s.io` (the official Python client's default): binary messages whose
  first byte is the channel (0 stdin, 1 stdout, 2 stderr, 3 the end as a metav1 Status, 4 resize);
- portforward: `v4.channel.k8s.io`, two channels per requested port (data 2i, error 2i+1), each
  opened by the port number (2 bytes, little-endian); and `SPDY/3.1+portforward.k8s.io`, kubectl's
  SPDY session tunnelled in the WebSocket (nbkube/apiserver/spdystreams.py, which also serves the
  plain `Upgrade: SPDY/3.1` of kubectl's port-forward and of exec/attach before kubectl 1.30).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from nbkube.errors import BadRequest
from nbkube.node.agentclient import agent_headers, agent_target, agent_url

__all__ = [
    "EXEC_PROTOCOLS",
    "PORTFORWARD_PROTOCOLS",
    "StreamTarget",
    "choose_protocol",
    "end_status",
    "portforward_url",
    "stream_target",
]

V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
EXEC_PROTOCOLS = (V5, V4)
SPDY_TUNNEL = "SPDY/3.1+portforward.k8s.io"
PORTFORWARD_PROTOCOLS = (SPDY_TUNNEL, V4)


@dataclass(frozen=True)
class StreamTarget:
    """The agent URL(s) to open (one per forwarded port) and what the client asked for."""

    urls: tuple[str, ...]
    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False
    ports: tuple[int, ...] = ()
    command: tuple[str, ...] = ()
    namespace: str = ""
    pod: str = ""


def choose_protocol(offered: str, subresource: str) -> str:
    """The channel protocol to speak: the first the client offers (Sec-WebSocket-Protocol, in its
    order of preference) that this server speaks for `subresource`; BadRequest naming both."""
    supported = PORTFORWARD_PROTOCOLS if subresource == "portforward" else EXEC_PROTOCOLS
    wanted = [p.strip() for p in offered.split(",") if p.strip()]
    for p in wanted:
        if p in supported:
            return p
    raise BadRequest(
        f"pods/{subresource}: none of the requested channel protocols ({', '.join(wanted) or 'none'}) "
        f"is supported; this server speaks {', '.join(supported)} over WebSocket"
    )


def _flag(query: Sequence[tuple[str, str]], name: str, default: bool) -> bool:
    values = [v for k, v in query if k == name]
    if not values:
        return default
    if values[-1] in ("true", "1"):
        return True
    if values[-1] in ("false", "0", ""):
        return False
    raise BadRequest(f'{name} must be true or false, got "{values[-1]}"')


def _ports(query: Sequence[tuple[str, str]]) -> tuple[int, ...]:
    ports: list[int] = []
    for text in (v for k, v in query if k == "ports"):
        for part in text.split(","):
            try:
                port = int(part)
            except ValueError:
                raise BadRequest(f'ports: "{part}" is not a port number') from None
            if not 0 < port < 65536:
                raise BadRequest(f"ports: {port} is not between 1 and 65535")
            ports.append(port)
    return tuple(ports)  # none: a SPDY client names them per stream


def stream_target(
    registry: Any, namespace: str, name: str, subresource: str, query: Sequence[tuple[str, str]]
) -> StreamTarget:
    """What the stream `subresource` of pod `name` asks of which node agent; BadRequest (400) or
    NotFound (404) when it cannot be served, as kube-apiserver refuses it before the upgrade."""
    container = next((v for k, v in reversed(query) if k == "container"), None)
    pod = registry.get("Pod", name, namespace)
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise BadRequest(
            f"cannot {subresource} into a container in a completed pod; current phase is {phase}"
        )
    endpoint, chosen = agent_target(registry, namespace, name, container)
    headers = agent_headers(registry)
    if subresource == "portforward":
        ports = _ports(query)
        target = StreamTarget((), endpoint, headers, ports=ports, namespace=namespace, pod=name)
        return replace(target, urls=tuple(portforward_url(target, p) for p in ports))
    stdin, tty = _flag(query, "stdin", False), _flag(query, "tty", False)
    stdout, stderr = _flag(query, "stdout", True), _flag(query, "stderr", True)
    if not (stdin or stdout or stderr):
        raise BadRequest("you must specify at least 1 of stdin, stdout, stderr")
    if tty:
        # a terminal has one output: stderr is dropped, as the kubelet drops it (kubectl >= 1.30
        # sends stderr=false with -t, kubectl 1.28/1.29 stderr=true and expect no stderr stream)
        stderr = False
    _check_container(pod, chosen, subresource, stdin)
    params = [("stdin", "1" if stdin else "0"), ("tty", "1" if tty else "0")]
    command: tuple[str, ...] = ()
    if subresource == "exec":
        command = tuple(v for k, v in query if k == "command")
        if not command:
            raise BadRequest("you must specify at least one command for the container")
    params += [("command", c) for c in command]
    url = agent_url(endpoint, f"stream/{subresource}", namespace, name, chosen, params)
    return StreamTarget(
        (url,), endpoint, headers, stdin, stdout, stderr, tty, command=command, namespace=namespace, pod=name
    )


def portforward_url(target: StreamTarget, port: int) -> str:
    """The agent URL that connects to `port` of the target's pod."""
    return agent_url(
        target.endpoint, "stream/portforward", target.namespace, target.pod, "-", {"port": str(port)}
    )


def _check_container(pod: dict[str, Any], container: str, subresource: str, stdin: bool) -> None:
    """Refusals the pod object already shows (kubectl retries a refused WebSocket with SPDY, so
    the API server, not only the agent, says them): a container not running, and an attach with
    stdin to a container without `stdin: true`."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    state = next((s.get("state") or {} for s in statuses if s.get("name") == container), {})
    if "running" not in state:
        raise BadRequest(f'container not found ("{container}"): it is not running')
    spec = next(c for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name") == container)
    if subresource == "attach" and stdin and spec.get("stdin") is not True:
        raise BadRequest(
            f"container {container} of pod {(pod.get('metadata') or {}).get('name')} was not started with "
            "stdin: true; attach without -i, or set spec.containers[].stdin"
        )


def end_status(end: dict[str, Any], command: Sequence[str]) -> dict[str, Any]:
    """The metav1 Status sent on channel 3 when the agent says the session is over (`end` is its
    {"exitCode": N}, {} for an attach, or {"message": ...}), in kube-apiserver's words."""
    code = end.get("exitCode")
    if "message" in end:
        return {
            "metadata": {},
            "status": "Failure",
            "message": str(end["message"]),
            "reason": "InternalError",
        }
    if not code:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command {list(command)}, "
        f"exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }
