"""`nbkube up` (a whole local cluster in the foreground) and `nbkube kill-node` (fault injection).

Registered by `nbkube.cli` through COMMAND_MODULES. `up` runs a `nbkube.cluster.LocalCluster`
until Ctrl-C / SIGTERM (or `--duration` seconds, for scripts and tests); its first lines name the
store and the nodes, so other shells know what to pass as `--store`. `kill-node` runs in another
process than the node agents, so it cannot call `NodeAgent.fail()`: it sets the Node annotation
`nbkube.io/fault`, which the agent reads on its next heartbeat; `--revive` removes it.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from typing import Any

from nbkube.cli.context import Context, default_store_url
from nbkube.controlplane.profiles import PROFILES, get_profile
from nbkube.errors import BadRequest
from nbkube.procutil import stop_on_signals

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "up",
        help="run a local cluster (control plane + node agents) in the foreground until Ctrl-C",
        description="Run the control plane and N node agents in this process until Ctrl-C/SIGTERM. "
        "Without --store a private etcd is launched when an etcd binary exists (else a SQLite file) "
        "under ~/.nbkube/clusters/NAME.",
    )
    p.add_argument("--nodes", type=int, default=3, help="number of nodes, named node-1..node-N (default 3; up to 5,000 sim nodes, 250 of the other runtimes)")
    p.add_argument(
        "--runtime", default="sim", help="node runtime: sim, docker, process or auto (default sim)"
    )
    p.add_argument(
        "--profile", default="fast", choices=sorted(PROFILES), help="failover timings (default fast)"
    )
    p.add_argument("--name", default="default", help="cluster name: its folder is ~/.nbkube/clusters/NAME")
    p.add_argument("--data-dir", default=None, help="folder for the cluster's store (overrides --name's)")
    p.add_argument("--heartbeat", type=float, default=None, help="override the profile's heartbeat (s)")
    p.add_argument("--grace", type=float, default=None, help="override the profile's node grace (s)")
    p.add_argument(
        "--toleration",
        type=float,
        default=None,
        help="override the default not-ready/unreachable toleration (s)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="start a new cluster even if the folder's store is empty or another cluster's "
        "(without it such a store is refused, as a truncated or replaced one)",
    )
    p.add_argument(
        "--api-port",
        type=int,
        default=None,
        help="also serve the Kubernetes API on https://127.0.0.1:PORT (0: any free port; client "
        "certificates and tokens, RBAC), write the admin's kubeconfig and record the URL in the "
        "cluster folder's apiserver.json (for `nbkube tenant create`)",
    )
    p.add_argument(
        "--kubeconfig",
        default=None,
        help="where --api-port writes the kubeconfig (default: the cluster folder's kubeconfig)",
    )
    p.add_argument(
        "--pod-security",
        default=None,
        metavar="LEVEL",
        help="cluster-wide Pod Security default for namespaces without pod-security labels: "
        "privileged (default, as Kubernetes), baseline or restricted for enforce, or "
        "MODE=LEVEL[:VERSION],... for enforce/warn/audit (kube-system is exempt)",
    )
    p.add_argument(
        "--separate-processes",
        action="store_true",
        help="run the scheduler and the sim nodes each in a process of their own (as kube-scheduler "
        "and kwok run apart from the controllers), so that a big sim cluster uses a second core; "
        "sim runtime only, on the cluster's etcd or SQLite file",
    )
    p.set_defaults(handler=_up)

    j = subparsers.add_parser(
        "node",
        help="node commands: `node join` runs one node agent of this machine against a cluster's store",
    )
    node_verbs = j.add_subparsers(dest="node_verb", metavar="VERB")
    node_verbs.required = True
    jn = node_verbs.add_parser(
        "join",
        help="run a node agent here against a running cluster's store until Ctrl-C",
        description="Join this machine to a cluster as node NAME: its runtime, pod network and proxy run "
        "here, registered in the cluster's store (--store etcd://HOST:2379). Ctrl-C removes what it made.",
    )
    jn.add_argument("--name", required=True, help="the node's name")
    jn.add_argument("--node-ip", default=None, help="the address other nodes and clients reach this node at")
    jn.add_argument("--runtime", default="auto", help="docker, process, sim or auto (default auto)")
    jn.add_argument(
        "--network",
        default="auto",
        choices=["auto", "host", "netns"],
        help="host: pods in this machine's namespace (needs --node-ip); netns: a namespace of its own "
        "on this host's nbk0 bridge; auto: host when --node-ip is given",
    )
    jn.add_argument(
        "--profile", default="fast", choices=sorted(PROFILES), help="heartbeat timings (default fast)"
    )
    jn.add_argument(
        "--metrics-kubeconfig",
        default=None,
        help="the API server's kubeconfig: this node reports its pods' CPU and memory through it "
        "(kubectl top, autoscaling); without it they are not reported to the cluster",
    )
    jn.add_argument("--duration", type=float, default=None, help="leave after this many seconds")
    jn.set_defaults(handler=_node_join)

    k = subparsers.add_parser(
        "kill-node",
        help="inject a node fault (the node's agent obeys the Node annotation nbkube.io/fault)",
    )
    k.add_argument("node", metavar="NODE")
    k.add_argument(
        "--mode",
        default="power-off",
        choices=("power-off", "stop-heartbeats"),
        help="power-off: stop reporting and kill its pods; stop-heartbeats: stop reporting only",
    )
    k.add_argument("--revive", action="store_true", help="lift the fault instead")
    k.set_defaults(handler=_kill_node)


def _store_for_up(ctx: Context) -> str:
    # `--store` is taken out of argv by the CLI framework: the default URL means "not given"
    if ctx.store_url in ("auto", "") or (
        ctx.store_url == default_store_url() and not os.environ.get("NBKUBE_STORE")
    ):
        return "auto"
    return ctx.store_url


def _up(args: argparse.Namespace, ctx: Context) -> int | None:
    from nbkube.cluster import LocalCluster

    overrides: dict[str, float] = {}
    for arg, field in (
        ("heartbeat", "heartbeat_interval"),
        ("grace", "grace_period"),
        ("toleration", "toleration_seconds"),
    ):
        value = getattr(args, arg)
        if value is not None:
            overrides[field] = value
    profile = get_profile(args.profile, **overrides)
    if args.duration is not None and args.duration < 0:
        raise BadRequest("--duration must be >= 0")
    stop = threading.Event()
    with stop_on_signals(stop):
        cluster = LocalCluster(
            nodes=args.nodes,
            runtime=args.runtime,
            store=_store_for_up(ctx),
            profile=profile,
            data_dir=args.data_dir,
            name=args.name,
            fresh=args.fresh,
            pod_security=args.pod_security,
            separate_processes=args.separate_processes,
        )
        api: Any = None
        try:
            ctx.out(
                f"nbkube up: cluster {cluster.name!r}, profile {profile.name} (heartbeat {profile.heartbeat_interval:g}s, "
                f"grace {profile.grace_period:g}s, toleration {profile.toleration_seconds:g}s)"
            )
            ctx.out(f"store: {cluster.describe_store()}")
            if cluster.separate_processes:
                parts = ", ".join(f"{part} (pid {p.pid}, log {p.log_path})" for part, p in cluster.components.items())
                ctx.out(f"nodes: node-1..node-{cluster.num_nodes}; runtime {args.runtime}; processes: {parts}")
            else:
                nodes = ", ".join(f"{n} ({a.pod_cidr})" for n, a in cluster.agents.items()) or "none"
                ctx.out(f"nodes: {nodes}; runtime {args.runtime}")
            if cluster.pod_security is not None:
                ps = cluster.pod_security
                ctx.out(f"pod security: enforce {ps.enforce}, warn {ps.warn}, audit {ps.audit}")
            if cluster.address_block is not None:
                ctx.out(f"loopback addresses: {cluster.address_block.describe()}")
            ctx.out(f"use: nbkube --store {cluster.store_url} get pods   (Ctrl-C to stop)")
            api = _start_api(cluster, args, ctx)
            deadline = None if args.duration is None else time.monotonic() + args.duration
            while not stop.is_set():
                left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                if left <= 0:
                    break
                stop.wait(left)
            ctx.out("nbkube up: stopping")
        finally:
            if api is not None:
                api.stop()
            cluster.stop()
    return None


def _start_api(cluster: Any, args: argparse.Namespace, ctx: Context) -> Any:
    """The API server beside the cluster when --api-port is given, and how to point kubectl at it."""
    if args.api_port is None:
        return None
    from nbkube.apiserver import serve

    if not 0 <= args.api_port <= 65535:
        raise BadRequest(f"--api-port must be 0..65535, got {args.api_port}")
    api = serve(cluster, port=args.api_port)
    path = api.write_kubeconfig(args.kubeconfig or os.path.join(cluster.data_dir, "kubeconfig"))
    ctx.out(f"api: {api.url} (HTTPS, client certificates, RBAC); admin kubeconfig: {path}")
    ctx.out(f"use: kubectl --kubeconfig {path} get pods")
    return api


def _node_join(args: argparse.Namespace, ctx: Context) -> int | None:
    from nbkube.cluster import JoinedNode

    if not ctx.store_given:
        raise BadRequest("node join needs the cluster's store: --store etcd://HOST:2379 (or NBKUBE_STORE)")
    node = JoinedNode(
        ctx.api,
        args.name,
        runtime=args.runtime,
        profile=args.profile,
        node_ip=args.node_ip,
        network=args.network,
        metrics_kubeconfig=args.metrics_kubeconfig,
    )
    stop = threading.Event()
    with stop_on_signals(stop):
        try:
            node.start()
            ctx.out(
                f"node/{args.name} joined {ctx.store_url}: runtime {node.runtime_name}, "
                f"InternalIP {node.agent.address}, podCIDR {node.kit.pod_cidr}   (Ctrl-C to leave)"
            )
            stop.wait(args.duration)
            ctx.out(f"node/{args.name} leaving: removing its pods, rules and links")
        finally:
            node.stop()
    return None


def _kill_node(args: argparse.Namespace, ctx: Context) -> int | None:
    from nbkube.cluster import Cluster

    cluster = Cluster(ctx.api, ctx.store_url)
    if args.revive:
        cluster.kill_node(args.node, "none")
        ctx.out(f"node/{args.node} fault lifted")
    else:
        cluster.kill_node(args.node, args.mode)
        ctx.out(f"node/{args.node} fault injected: {args.mode} (its agent obeys on its next heartbeat)")
    return None
