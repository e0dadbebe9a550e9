"""The `nbkube` command: a kubectl-like front end over the registry (`nbkube = "nbkube.cli:main"`).

Who calls it: the console script, `python -m nbkube.cli`, the tests (in-process, `main([...])`) and
later the notebook's `%nbkube` magic, which is why `main` takes `argv` and returns an exit code
instead of calling `sys.exit`.

How verbs are added (without editing this file)
-----------------------------------------------
`COMMAND_MODULES` names the modules that contribute verbs. Each must define::

    def register(subparsers: argparse._SubParsersAction) -> None:
        p = subparsers.add_parser("scale", help="set the replica count of a controller")
        p.add_argument(...)
        add_namespace_args(p)            # optional helpers from nbkube.cli.context
        p.set_defaults(handler=_scale)

    def _scale(args: argparse.Namespace, ctx: Context) -> int | None: ...

A handler gets the parsed arguments and a `Context`: `ctx.api` opens the registry on first use
(so `nbkube version` or `--help` never touch the store), `ctx.out("line")` / `ctx.err("line")`
print, `ctx.store_url` is the chosen store (`ctx.store_given` is None when that is only the
built-in default). Returning None means exit 0. Raise `NbkubeError` (or `OSError`) for user
errors: `main` prints exactly one line `error: <message>` on stderr and returns 1. Ctrl-C in a
handler ends with exit 130 unless the handler catches KeyboardInterrupt itself (as a foreground
`nbkube up` should, to shut down cleanly).
A module that fails to import is a broken install and fails the command (no verb goes missing quietly).
Reusable pieces: `cmd_basic.load_manifest_args` (-f files, validated, with origins),
`cmd_basic.parse_targets` (`rc,svc NAME` / `rc/NAME`), `printers.table_rows` / `format_table`.

Global options: `--store URL` may come before or after the verb (it is taken out of argv before
argparse sees it); otherwise `$NBKUBE_STORE`; otherwise `--kubeconfig PATH` (or `$KUBECONFIG`),
which makes `ctx.api` a RestClient that works through the cluster's API server with that file's
credentials (and makes its context's namespace the default of `-n`, as kubectl does); otherwise `sqlite:///~/.nbkube/store.db`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from nbkube import __version__
from nbkube.cli.context import Context, Output, add_namespace_args, add_output_arg, default_store_url
from nbkube.client.kubeconfig import kubeconfig_from_env, load_kubeconfig
from nbkube.errors import NbkubeError
from nbkube.logutil import show_logs

__all__ = [
    "COMMAND_MODULES",
    "Context",
    "Output",
    "add_namespace_args",
    "add_output_arg",
    "build_parser",
    "default_store_url",
    "main",
]

COMMAND_MODULES: list[str] = [
    "nbkube.cli.cmd_basic",
    "nbkube.cli.cmd_cluster",
    "nbkube.cli.cmd_workloads",
    "nbkube.cli.cmd_nodes",
    "nbkube.cli.cmd_images",
    "nbkube.cli.cmd_pods",
    "nbkube.cli.cmd_demo",
    "nbkube.cli.cmd_secrets",
    "nbkube.cli.cmd_tenant",
    "nbkube.cli.cmd_component",
]


class _UsageError(Exception):
    """A problem with the global options found before argparse runs (exit 2, like argparse)."""


def _extract_global(argv: list[str], option: str) -> tuple[str | None, list[str]]:
    """Take `--OPTION VALUE` / `--OPTION=VALUE` out of argv wherever it is (up to a bare `--`)."""
    flag = f"--{option}"
    value: str | None = None
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg == flag:
            if i + 1 >= len(argv) or not argv[i + 1] or argv[i + 1].startswith("-"):
                raise _UsageError(f"argument {flag}: expected one argument")
            value = argv[i + 1]
            i += 2
            continue
        if arg.startswith(flag + "="):
            value = arg[len(flag) + 1 :]
            if not value:
                raise _UsageError(f"argument {flag}: expected one argument")
            i += 1
            continue
        rest.append(arg)
        i += 1
    return value, rest


def _verb(argv: list[str]) -> str:
    """The command word: the first argument that is neither an option nor a global option's value."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--store", "--kubeconfig"):
            skip = True
        elif not arg.startswith("-"):
            return arg
    return ""


def _extract_store(argv: list[str]) -> tuple[str | None, list[str]]:
    return _extract_global(argv, "store")


def _load_modules(err: Output) -> list[ModuleType]:
    modules = []
    for name in COMMAND_MODULES:
        # a module that fails to import is a broken install: say so by failing, not by a missing verb
        modules.append(importlib.import_module(name))
    return modules


def build_parser(err: Output | None = None) -> argparse.ArgumentParser:
    """The full parser, with every available command module's verbs registered."""
    parser = argparse.ArgumentParser(
        prog="nbkube",
        description="nbkube: a small container orchestrator after Kubernetes (kubectl-like CLI).",
    )
    # Documented here for --help; the value itself is extracted before parsing (see _extract_store).
    parser.add_argument(
        "--store",
        metavar="URL",
        help="store URL: sqlite:///abs/path.db, sqlite://:memory:, etcd://host:port or "
        "etcd+unix:///abs/etcd.sock "
        "(default $NBKUBE_STORE, else sqlite:///~/.nbkube/store.db); allowed before or after the verb",
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="work through the cluster's API server with this kubeconfig's credentials instead of "
        "opening its store (default $KUBECONFIG when no --store or $NBKUBE_STORE is given)",
    )
    parser.add_argument("--version", action="version", version=f"nbkube {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module in _load_modules(err or Output(sys.stderr)):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `nbkube` command; returns the exit code (0 ok, 1 error, 2 usage, 130 interrupted)."""
    out = Output(sys.stdout)
    err = Output(sys.stderr)
    show_logs()  # the background loops' warnings (one line each) on stderr, as before
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        store, args_list = _extract_store(args_list)
        kubeconfig = None
        if _verb(args_list) != "up":  # `up --kubeconfig F` says where to write the cluster's own
            kubeconfig, args_list = _extract_global(args_list, "kubeconfig")
    except _UsageError as exc:
        err(f"usage: nbkube [--store URL | --kubeconfig PATH] COMMAND ...\nnbkube: error: {exc}")
        return 2
    if store and kubeconfig:
        err("usage: nbkube [--store URL | --kubeconfig PATH] COMMAND ...\nnbkube: error: give --store or --kubeconfig, not both")
        return 2
    parser = build_parser(err)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    handler = getattr(args, "handler", None)
    if handler is None:  # a registered verb that forgot set_defaults(handler=...)
        err(f"error: nbkube {args.command}: this command has no handler")
        return 1
    ctx: Context | None = None
    try:
        given = store or os.environ.get("NBKUBE_STORE") or None
        if not given and not kubeconfig:
            kubeconfig = kubeconfig_from_env()
        ctx = Context(given or default_store_url(), out=out, err=err, store_given=given, kubeconfig=kubeconfig)
        if kubeconfig and getattr(args, "namespace", "") is None and not getattr(args, "all_namespaces", False):
            # as kubectl: without -n, the kubeconfig context's namespace (a tenant's own)
            args.namespace = load_kubeconfig(kubeconfig).namespace
        code = handler(args, ctx)
        return int(code or 0)
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except BrokenPipeError:
        # `nbkube get po | head`: the reader went away; stop quietly, as kubectl does
        _silence_stdout()
        return 1
    except (NbkubeError, OSError) as exc:
        err(f"error: {_one_line(exc)}")
        return 1
    finally:
        # a failure to close must not hide the command's own outcome
        if ctx is not None:
            with contextlib.suppress(NbkubeError, OSError):
                ctx.close()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    return " ".join(text.split("\n")) if "\n" in text else text


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
