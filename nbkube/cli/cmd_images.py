"""The offline image verbs: `nbkube images seed` and `nbkube images list`.

Registered by `nbkube.cli.main` through `COMMAND_MODULES`. Machines here have no registry
(docs/architecture.md): `seed` imports the host's static busybox into the local
Docker engine as `busybox:latest` and the pod infra image `nbkube/pause:latest`; the work is done
by `nbkube.node.runtime.images`, this module only talks to the user.
"""

from __future__ import annotations

import argparse
from typing import Any

from nbkube.api.printers import format_table
from nbkube.cli.context import Context
from nbkube.errors import BadRequest

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("images", help="container images of the local Docker engine (offline seeding)")
    sub = p.add_subparsers(dest="images_verb", metavar="{seed,list}")
    sub.required = True
    s = sub.add_parser("seed", help="import the host's busybox as busybox:latest and nbkube/pause:latest")
    s.set_defaults(handler=_seed)
    s = sub.add_parser("list", help="list the engine's images")
    s.set_defaults(handler=_list)


def _client() -> Any:
    try:
        import docker  # type: ignore[import-untyped,unused-ignore]

        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:
        raise BadRequest(
            f"cannot reach the Docker engine ({exc}); is dockerd running and are you root?"
        ) from exc
    return client


def _seed(args: argparse.Namespace, ctx: Context) -> int | None:
    from nbkube.node.runtime.images import ensure_images

    client = _client()
    try:
        try:
            result = ensure_images(client)
        except FileNotFoundError as exc:
            raise BadRequest(str(exc)) from exc
        for ref, what in result.items():
            ctx.out(f"{ref} {'imported from the host busybox' if what == 'imported' else 'already present'}")
    finally:
        client.close()
    return None


def _list(args: argparse.Namespace, ctx: Context) -> int | None:
    from nbkube.node.runtime.images import list_images

    client = _client()
    try:
        rows = [
            [r["ref"], r["id"], f"{r['size'] / 1e6:.1f}MB", r["created"][:19]] for r in list_images(client)
        ]
    finally:
        client.close()
    for line in format_table(["IMAGE", "ID", "SIZE", "CREATED"], rows).splitlines():
        ctx.out(line)
    return None
