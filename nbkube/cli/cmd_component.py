"""`nbkube component scheduler|sim-nodes`: one part of a running cluster, in this process.

Why: `nbkube up --separate-processes` (LocalCluster(separate_processes=True)) runs the scheduler
and the simulated nodes each in a child process of its own, as kube-scheduler and kwok run apart
from kube-controller-manager, so that they use a second core (nbkube/components.py says why).
These are those children. They work on the cluster's store (`--store`), print one `ready` line on
stdout once running, and stop when stdin closes or on SIGTERM; run by hand, Ctrl-D or Ctrl-C
stops them.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from nbkube.cli.context import Context
from nbkube.errors import BadRequest

if TYPE_CHECKING:
    from nbkube.registry.registry import Registry

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "component",
        help="run one part of a cluster (the scheduler, or a pool of sim nodes) against its store",
        description="What `nbkube up --separate-processes` runs in its child processes: the "
        "scheduler (electing on the Lease kube-system/nbkube-scheduler) or simulated nodes, "
        "against the cluster's store (--store). Prints `ready` when running; stops when stdin "
        "closes, or on SIGTERM/Ctrl-C.",
    )
    verbs = p.add_subparsers(dest="component", metavar="PART")
    verbs.required = True
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--profile-json",
        required=True,
        metavar="JSON",
        help="the cluster's timing profile, every field (as the parent cluster passes it)",
    )
    common.add_argument(
        "--pod-security",
        default=None,
        metavar="LEVEL",
        help="the cluster-wide Pod Security default, as `nbkube up --pod-security`",
    )
    s = verbs.add_parser("scheduler", parents=[common], help="the scheduler")
    s.set_defaults(handler=_scheduler)
    n = verbs.add_parser("sim-nodes", parents=[common], help="simulated nodes node-FIRST..node-(FIRST+COUNT-1)")
    n.add_argument("--first", type=int, default=1, help="the first node's number (default 1)")
    n.add_argument("--count", type=int, required=True, help="how many nodes")
    n.add_argument("--capacity-json", default=None, metavar="JSON", help='each node\'s capacity, e.g. {"cpu": "32"}')
    n.add_argument("--options-json", default=None, metavar="JSON", help="the sim runtime's options")
    n.add_argument("--state-dir", required=True, help="the nodes' folder")
    n.set_defaults(handler=_sim_nodes)


def _json_object(flag: str, text: str | None) -> dict[str, object] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as err:
        raise BadRequest(f"{flag} is not JSON: {err}") from err
    if not isinstance(value, dict):
        raise BadRequest(f"{flag} must be a JSON object, got {type(value).__name__}")
    return value


def _registry(args: argparse.Namespace, ctx: Context) -> Registry:
    from nbkube.client.eventsink import batch_events
    from nbkube.cluster import registry_for_url
    from nbkube.gctune import tune_for_scale
    from nbkube.registry.admission_podsecurity import parse_pod_security

    if not ctx.store_given:
        raise BadRequest("component needs the cluster's store: --store URL (or NBKUBE_STORE)")
    pod_security = parse_pod_security(args.pod_security) if args.pod_security else None
    api = registry_for_url(ctx.store_url, pod_security=pod_security)
    # the parts that run apart are the busy ones: Events in batches, a collector tuned for a big heap
    batch_events(api)
    tune_for_scale()
    return api


def _serve_part(api: Registry, start_part: Callable[[], Callable[[], None]]) -> None:
    """Run a part (`start_part` starts it and returns its stop) until the parent says stop; then
    write the Events still queued and close the registry and its store."""
    from nbkube.client.eventsink import stop_batching
    from nbkube.components import serve

    def start() -> Callable[[], None]:
        stop_part = start_part()

        def stop() -> None:
            stop_part()
            stop_batching(api)
            api.close()
            api.store.close()

        return stop

    serve(start)


def _scheduler(args: argparse.Namespace, ctx: Context) -> int | None:
    from nbkube.components import profile_from_json, start_scheduler

    profile = profile_from_json(args.profile_json)
    api = _registry(args, ctx)
    _serve_part(api, lambda: start_scheduler(api, profile).stop)
    return None


def _sim_nodes(args: argparse.Namespace, ctx: Context) -> int | None:
    from nbkube.components import SimNodePool, profile_from_json

    profile = profile_from_json(args.profile_json)
    capacity = _json_object("--capacity-json", args.capacity_json)
    options = _json_object("--options-json", args.options_json)
    if not os.path.isabs(args.state_dir):
        raise BadRequest(f"--state-dir must be an absolute path, got {args.state_dir!r}")
    api = _registry(args, ctx)
    pool = SimNodePool(
        api,
        args.first,
        args.count,
        profile=profile,
        state_dir=args.state_dir,
        capacity={str(k): str(v) for k, v in capacity.items()} if capacity else None,
        options=options,
    )

    def start() -> Callable[[], None]:
        pool.start()
        return pool.stop

    _serve_part(api, start)
    return None
