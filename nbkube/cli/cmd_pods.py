"""`nbkube logs` and `nbkube exec`: a container's output and a command run inside it.

As `kubectl logs` reaches the kubelet, these find the pod's node, read the node agent's endpoint
from the Node's `nbkube.io/agent-endpoint` annotation and ask that agent (see
nbkube/node/agentserver.py). The agent listens on loopback and asks for the cluster's agent
credential, so these verbs work from the machine the node runs on, for the cluster's owner.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from nbkube.cli.context import Context
from nbkube.errors import BadRequest
from nbkube.node.agentclient import agent_error, agent_request, agent_target, agent_url


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


def _logs(args: argparse.Namespace, ctx: Context) -> int | None:
    endpoint, container = agent_target(ctx.api, args.namespace, args.pod, args.container)
    query: dict[str, str] = {}
    if args.tail is not None:
        query["tail"] = str(args.tail)
    if args.follow:
        query["follow"] = "1"
    url = agent_url(endpoint, "logs", args.namespace, args.pod, container, query)
    try:
        with urllib.request.urlopen(agent_request(ctx.api, url), timeout=None if args.follow else 30) as resp:
            while chunk := resp.read1(65536):
                ctx.out.write(chunk.decode("utf-8", "replace"))
                ctx.out.flush()
    except (urllib.error.URLError, OSError) as exc:
        raise agent_error(endpoint, exc) from None
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
    endpoint, container = agent_target(ctx.api, args.namespace, args.pod, args.container)
    url = agent_url(endpoint, "exec", args.namespace, args.pod, container, {})
    body = json.dumps({"argv": command}).encode()
    request = agent_request(ctx.api, url, body)
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            result: dict[str, Any] = json.loads(resp.read())
    except (urllib.error.URLError, OSError) as exc:
        raise agent_error(endpoint, exc) from None
    ctx.out.write(str(result.get("output", "")))
    ctx.out.flush()
    code = int(result.get("exitCode", 1))
    return code if code else None
