"""`nbkube logs` and `nbkube exec`: a container's output and a command run inside it.

As `kubectl logs` reaches the kubelet, these find the pod's node, read the node agent's endpoint
from the Node's `nbkube.io/agent-endpoint` annotation and ask that agent (see
nbkube/node/agentserver.py). The agent listens on loopback, so these verbs work from the machine
the node runs on.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from nbkube.cli.context import Context
from nbkube.errors import BadRequest, NbkubeError

ENDPOINT_ANNOTATION = "nbkube.io/agent-endpoint"  # written by the node agent's server


def register(subparsers: argparse._SubParsersAction) -> None:
    lg = subparsers.add_parser("logs", help="print a container's output (stdout and stderr)")
    lg.add_argument("pod", metavar="POD")
    lg.add_argument("-c", "--container", default=None, help="container name (default: the pod's first)")
    lg.add_argument("-n", "--namespace", default="default")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing as the container writes")
    lg.add_argument("--tail", type=int, default=None, help="only the last N lines")
    lg.set_defaults(handler=_logs)
    ex = subparsers.add_parser("exec", help="run a command in a container: nbkube exec POD -- CMD [ARGS...]")
    ex.add_argument("pod", metavar="POD")
    ex.add_argument("-c", "--container", default=None, help="container name (default: the pod's first)")
    ex.add_argument("-n", "--namespace", default="default")
    ex.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    ex.set_defaults(handler=_exec)


def _target(ctx: Context, namespace: str, name: str, container: str | None) -> tuple[str, str]:
    """(agent endpoint, container) for the pod."""
    pod = ctx.api.get("Pod", name, namespace)
    containers = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
    chosen = container or (containers[0] if containers else "")
    if chosen not in containers:
        raise BadRequest(f'container "{chosen}" is not in pod {name} (it has: {", ".join(containers)})')
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise BadRequest(f"pod {name} is not scheduled to a node yet")
    node = ctx.api.get("Node", node_name)
    endpoint = ((node.get("metadata") or {}).get("annotations") or {}).get(ENDPOINT_ANNOTATION)
    if not endpoint:
        raise BadRequest(
            f"node {node_name} does not serve logs and exec (a simulated node, or its agent is down)"
        )
    return str(endpoint), chosen


def _url(endpoint: str, verb: str, namespace: str, pod: str, container: str, query: dict[str, str]) -> str:
    path = "/".join(urllib.parse.quote(p, safe="") for p in (verb, namespace, pod, container))
    suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
    return f"http://{endpoint}/{path}{suffix}"


def _agent_error(endpoint: str, exc: Exception) -> NbkubeError:
    if isinstance(exc, urllib.error.HTTPError):
        try:
            message = json.loads(exc.read()).get("message", "")
        except ValueError:
            message = ""
        return BadRequest(message or f"the node agent at {endpoint} answered {exc.code}")
    return BadRequest(f"the node agent at {endpoint} cannot be reached: {exc}")


def _logs(args: argparse.Namespace, ctx: Context) -> int | None:
    endpoint, container = _target(ctx, args.namespace, args.pod, args.container)
    query: dict[str, str] = {}
    if args.tail is not None:
        query["tail"] = str(args.tail)
    if args.follow:
        query["follow"] = "1"
    url = _url(endpoint, "logs", args.namespace, args.pod, container, query)
    try:
        with urllib.request.urlopen(url, timeout=None if args.follow else 30) as resp:
            while chunk := resp.read1(65536):
                ctx.out.write(chunk.decode("utf-8", "replace"))
                ctx.out.flush()
    except (urllib.error.URLError, OSError) as exc:
        raise _agent_error(endpoint, exc) from None
    return None


def _exec(args: argparse.Namespace, ctx: Context) -> int | None:
    # argparse hands everything after POD to the command, options placed after POD included
    # (`exec POD -c side -- CMD`, as kubectl takes them): read those up to the `--` here.
    command = list(args.command)
    while command and command[0] in ("-c", "--container", "-n", "--namespace"):
        flag = command.pop(0)
        if not command:
            raise BadRequest(f"exec: {flag} needs a value")
        setattr(args, "container" if flag in ("-c", "--container") else "namespace", command.pop(0))
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise BadRequest("exec needs a command: nbkube exec POD -- CMD [ARGS...]")
    endpoint, container = _target(ctx, args.namespace, args.pod, args.container)
    url = _url(endpoint, "exec", args.namespace, args.pod, container, {})
    body = json.dumps({"argv": command}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            result: dict[str, Any] = json.loads(resp.read())
    except (urllib.error.URLError, OSError) as exc:
        raise _agent_error(endpoint, exc) from None
    ctx.out.write(str(result.get("output", "")))
    ctx.out.flush()
    code = int(result.get("exitCode", 1))
    return code if code else None
