"""The workload verbs: `nbkube scale`, `nbkube rollout ...` and the article's `nbkube rolling-update`.

Registered by `nbkube.cli.main` through `COMMAND_MODULES`. These commands only write desired
state through the registry (spec.replicas, a Deployment's template or `paused`) and read status
back; the controllers of a control plane running against the same store (`nbkube up`, a notebook's
LocalCluster) do the work. `rolling-update` is the exception that proves it: it is a client-side
driver, as `kubectl rolling-update` was, stepping two replication controllers itself — it too
needs that control plane running, to create and delete the pods.
"""

from __future__ import annotations

import argparse
import time

from nbkube.api import kinds
from nbkube.cli.context import Context, add_namespace_args
from nbkube.errors import BadRequest, NbkubeError

__all__ = ["register"]

_SCALABLE = ("ReplicationController", "ReplicaSet", "Deployment", "StatefulSet")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("scale", help="set the replica count of an rc, replicaset or deployment")
    p.add_argument("target", metavar="KIND[/NAME]", help="e.g. rc/nginx, or `rc nginx`")
    p.add_argument("name", metavar="NAME", nargs="?")
    p.add_argument("--replicas", type=_non_negative, required=True, metavar="N")
    add_namespace_args(p, all_namespaces=False)
    p.set_defaults(handler=_scale)

    p = subparsers.add_parser(
        "rollout", help="manage a deployment's rollout: status|undo|pause|resume|history"
    )
    p.add_argument("action", choices=("status", "undo", "pause", "resume", "history"))
    p.add_argument("target", metavar="deploy/NAME", help="e.g. deploy/nginx, or `deployment nginx`")
    p.add_argument("name", metavar="NAME", nargs="?")
    p.add_argument(
        "--to-revision", type=_non_negative, default=0, metavar="N", help="undo: roll back to revision N"
    )
    p.add_argument(
        "--timeout", type=_seconds, default=300.0, metavar="S", help="status: give up after S seconds"
    )
    p.add_argument(
        "--watch", action=argparse.BooleanOptionalAction, default=True, help="status: wait for the end"
    )
    add_namespace_args(p, all_namespaces=False)
    p.set_defaults(handler=_rollout)

    p = subparsers.add_parser(
        "rolling-update",
        help="replace a replication controller by a new one, one pod at a time (needs a running control plane)",
    )
    p.add_argument("rc", metavar="RC")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", metavar="IMAGE", help="new image for the RC's container")
    src.add_argument("-f", "--filename", metavar="FILE", help="manifest of the new replication controller")
    p.add_argument("--container", metavar="NAME", help="which container gets --image (if several)")
    p.add_argument("--max-unavailable", type=_non_negative, default=0, metavar="N")
    p.add_argument("--max-surge", type=_non_negative, default=1, metavar="N")
    p.add_argument("--update-period", type=_seconds, default=1.0, metavar="S", help="wait between steps")
    p.add_argument("--poll-interval", type=_seconds, default=0.2, metavar="S", help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=_seconds, default=300.0, metavar="S")
    add_namespace_args(p, all_namespaces=False)
    p.set_defaults(handler=_rolling_update)


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _seconds(text: str) -> float:
    t = text.strip().lower()
    scale = 1.0
    if t.endswith("ms"):
        t, scale = t[:-2], 0.001
    elif t.endswith("s"):
        t = t[:-1]
    elif t.endswith("m"):
        t, scale = t[:-1], 60.0
    try:
        value = float(t) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a duration like 30, 30s, 500ms or 2m, got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _kind_and_name(target: str, name: str | None, allowed: tuple[str, ...]) -> tuple[str, str]:
    if "/" in target:
        if name:
            raise BadRequest(f"give either KIND/NAME or KIND NAME, not both ({target} {name})")
        kind_text, _, name = target.partition("/")
    else:
        kind_text = target
    if not name:
        raise BadRequest(f"missing NAME: expected KIND/NAME or KIND NAME, got {target!r}")
    info = kinds.lookup(kind_text)
    if info.kind not in allowed:
        names = ", ".join(k.lower() for k in allowed)
        raise BadRequest(f"cannot do this to a {info.kind}: supported kinds are {names}")
    return info.kind, name


def _ref(kind: str, name: str) -> str:
    info = kinds.lookup(kind)
    return f"{info.singular}.{info.group}/{name}" if info.group else f"{info.singular}/{name}"


def _scale(args: argparse.Namespace, ctx: Context) -> int | None:
    from nbkube.controlplane.controllers.replication import scale

    kind, name = _kind_and_name(args.target, args.name, _SCALABLE)
    scale(ctx.api, kind, name, args.namespace or "default", args.replicas)
    ctx.out(f"{_ref(kind, name)} scaled")
    return None


def _rollout(args: argparse.Namespace, ctx: Context) -> int | None:
    from nbkube.controlplane.controllers import deployment as dep

    _kind, name = _kind_and_name(args.target, args.name, ("Deployment",))
    ns = args.namespace or "default"
    ref = _ref("Deployment", name)
    if args.action == "pause":
        dep.set_paused(ctx.api, name, ns, True)
        ctx.out(f"{ref} paused")
    elif args.action == "resume":
        dep.set_paused(ctx.api, name, ns, False)
        ctx.out(f"{ref} resumed")
    elif args.action == "undo":
        before = ctx.api.get("Deployment", name, ns)
        after, revision = dep.rollback(ctx.api, name, ns, args.to_revision)
        if after["metadata"].get("resourceVersion") == before["metadata"].get("resourceVersion"):
            ctx.out(f"{ref} skipped rollback (current template already matches revision {revision})")
        else:
            ctx.out(f"{ref} rolled back to revision {revision}")
    elif args.action == "history":
        rows = dep.rollout_history(ctx.api, name, ns)
        ctx.out(f"{ref}")
        ctx.out(f"{'REVISION':<10}CHANGE-CAUSE")
        for revision, _rs, cause in rows:
            ctx.out(f"{revision:<10}{cause or '<none>'}")
    else:
        return _rollout_status(ctx, name, ns, args.timeout, args.watch)
    return None


def _rollout_status(ctx: Context, name: str, ns: str, timeout: float, watch: bool) -> int | None:
    from nbkube.controlplane.controllers.deployment import rollout_status

    deadline = time.monotonic() + timeout
    last = ""
    while True:
        done, message = rollout_status(ctx.api.get("Deployment", name, ns))
        if message != last:
            ctx.out(message)
            last = message
        if done or not watch:
            return None if done else 1
        if time.monotonic() >= deadline:
            raise NbkubeError(f'timed out after {timeout:g}s waiting for deployment "{name}" to roll out')
        time.sleep(0.2)


def _rolling_update(args: argparse.Namespace, ctx: Context) -> int | None:
    from nbkube.controlplane.controllers.rollingupdate import rolling_update

    new_rc = None
    ns = args.namespace
    if args.filename:
        from nbkube.api.serialization import load_file

        docs = load_file(args.filename)
        if len(docs) != 1 or docs[0].get("kind") != "ReplicationController":
            raise BadRequest(f"{args.filename}: must hold exactly one ReplicationController")
        new_rc = docs[0]
        if ns is None and (new_rc.get("metadata") or {}).get("namespace"):
            ns = new_rc["metadata"]["namespace"]
    final = rolling_update(
        ctx.api,
        args.rc,
        ns or "default",
        image=args.image,
        new_rc=new_rc,
        container=args.container,
        max_unavailable=args.max_unavailable,
        max_surge=args.max_surge,
        update_period=args.update_period,
        poll_interval=args.poll_interval,
        timeout=args.timeout,
        progress=ctx.out,
    )
    final_name = final["metadata"]["name"]
    if final_name == args.rc:
        ctx.out(f"replicationcontroller/{args.rc} rolling updated")
    else:
        ctx.out(f'replicationcontroller/{args.rc} rolling updated to "{final_name}"')
    return None
