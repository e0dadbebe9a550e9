"""The maintenance verbs: `nbkube cordon NODE`, `nbkube uncordon NODE`, `nbkube drain NODE`.

Registered by `nbkube.cli.main` through `COMMAND_MODULES`. The handlers only print what
`nbkube.client.maintenance` does, in kubectl's words (`node/node-1 cordoned`, `evicting pod
default/x`, `node/node-1 drained`); the rules about which pods may be evicted live there.
"""

from __future__ import annotations

import argparse

from nbkube.cli.context import Context
from nbkube.client.maintenance import DrainRefused, DrainTimeout, EvictedPod, cordon, drain, uncordon
from nbkube.errors import NbkubeError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("cordon", help="mark a node unschedulable (maintenance mode)")
    p.add_argument("node", metavar="NODE")
    p.set_defaults(handler=_cordon)

    p = subparsers.add_parser("uncordon", help="mark a node schedulable again")
    p.add_argument("node", metavar="NODE")
    p.set_defaults(handler=_uncordon)

    p = subparsers.add_parser(
        "drain", help="cordon a node and evict its pods so their controllers recreate them elsewhere"
    )
    p.add_argument("node", metavar="NODE")
    p.add_argument(
        "--force", action="store_true", help="also delete pods no controller will recreate (they are lost)"
    )
    p.add_argument(
        "--ignore-daemonsets",
        action="store_true",
        help="leave DaemonSet-managed pods in place (without it, a node running them refuses to drain)",
    )
    p.add_argument(
        "--delete-emptydir-data",
        action="store_true",
        help="evict pods with emptyDir volumes (their data is lost)",
    )
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="how long to retry evictions a PodDisruptionBudget refuses and wait for evicted pods to go "
        "(default 60; 0 = try once, do not wait)",
    )
    p.set_defaults(handler=_drain)


def _seconds(text: str) -> float:
    """`60`, `60s`, `2m` or `1h` -> seconds (kubectl takes durations)."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    raw = text.strip()
    scale = units.get(raw[-1:], 0.0)
    number = raw[:-1] if scale else raw
    try:
        value = float(number) * (scale or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 30, 30s, 2m)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"--timeout must not be negative, got {text!r}")
    return value


def _cordon(args: argparse.Namespace, ctx: Context) -> None:
    changed = cordon(ctx.api, args.node)
    ctx.out(f"node/{args.node} {'cordoned' if changed else 'already cordoned'}")


def _uncordon(args: argparse.Namespace, ctx: Context) -> None:
    changed = uncordon(ctx.api, args.node)
    ctx.out(f"node/{args.node} {'uncordoned' if changed else 'already uncordoned'}")


def _drain(args: argparse.Namespace, ctx: Context) -> None:
    node = args.node
    api = ctx.api
    # cordon first on our own, so the lines come in kubectl's order (drain's cordon is then a no-op)
    changed = cordon(api, node)
    ctx.out(f"node/{node} {'cordoned' if changed else 'already cordoned'}")

    def evicting(pod: EvictedPod) -> None:
        ctx.out(f"evicting pod {pod.key}")

    try:
        report = drain(
            api,
            node,
            force=args.force,
            ignore_daemonsets=args.ignore_daemonsets,
            delete_emptydir_data=args.delete_emptydir_data,
            timeout=args.timeout,
            on_evict=evicting,
        )
    except DrainRefused as e:
        raise NbkubeError(f'unable to drain node "{node}" (it stays cordoned): {e}') from e
    except DrainTimeout as e:
        for pod in e.report.evicted:
            if pod.key not in e.remaining:
                ctx.out(f"pod/{pod.name} evicted")
        raise
    for key, why in report.ignored:
        ctx.err(f"Warning: ignoring {key}: {why}")
    for warning in report.warnings:
        ctx.err(f"Warning: {warning}")
    for pod in report.evicted:
        moved = f" (its {pod.owner_kind} {pod.owner_name} recreates it elsewhere)" if pod.owner_kind else ""
        ctx.out(f"pod/{pod.name} evicted{moved}")
    ctx.out(f"node/{node} drained")
