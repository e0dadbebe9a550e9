"""`nbkube secrets rotate-key | rewrite`: rotate the key that encrypts Secrets at rest.

Upstream's procedure (kube-apiserver's encryption configuration), in two verbs: `rotate-key` puts a
new AES-GCM key first in the cluster's `encryption-config.yaml` (new writes use it, the old keys
still read; a running cluster re-reads the file); `rewrite` writes every Secret again with the first
key and, with `--drop-old-keys`, then removes the other keys, once nothing needs them. See
nbkube/security/encryption.py.
"""

from __future__ import annotations

import argparse
import os

from nbkube.cli.context import Context
from nbkube.errors import BadRequest
from nbkube.security.encryption import CONFIG_FILE, drop_old_keys, rotate


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("secrets", help="encryption of Secrets at rest: rotate-key, rewrite")
    verbs = p.add_subparsers(dest="secrets_verb", metavar="VERB", required=True)
    rk = verbs.add_parser("rotate-key", help="add a new first key (it encrypts from now on)")
    rk.set_defaults(handler=_rotate_key)
    rw = verbs.add_parser("rewrite", help="re-write every Secret with the first key")
    rw.add_argument(
        "--drop-old-keys", action="store_true", help="then remove every other key from the configuration"
    )
    rw.set_defaults(handler=_rewrite)


def _config_path(ctx: Context) -> str:
    folder = ctx.api.credentials_dir
    if not folder:
        raise BadRequest(
            f"store {ctx.store_url} belongs to no cluster folder of this user: there are no encryption keys to manage"
        )
    return os.path.join(folder, CONFIG_FILE)


def _rotate_key(args: argparse.Namespace, ctx: Context) -> int | None:
    path = _config_path(ctx)
    name = rotate(path)
    ctx.out(f"{name} encrypts Secrets from now on ({path}); next: nbkube secrets rewrite --drop-old-keys")
    return None


def _rewrite(args: argparse.Namespace, ctx: Context) -> int | None:
    path = _config_path(ctx)
    rewritten, total = ctx.api.rewrite("Secret")
    ctx.out(f"rewrote {rewritten} of {total} secrets with the first key of {path}")
    if args.drop_old_keys:
        # a Secret written meanwhile by a process that had not re-read the file yet would still
        # need an old key: look again, and drop nothing while anything is stale
        again, _total = ctx.api.rewrite("Secret")
        if again:
            raise BadRequest(f"{again} secrets were written with an old key meanwhile: run rewrite again")
        dropped = drop_old_keys(path)
        ctx.out(f"dropped keys: {', '.join(dropped) or 'none'}")
    return None
