"""`%nbkube` and `%%nbkube`: the CLI inside a notebook cell.

`%load_ext nbkube` calls `load_ipython_extension`, which registers `NbkubeMagics`. Every verb runs
through `nbkube.cli.main(argv)` with stdout, stderr (and, for `%%nbkube apply`, stdin = the cell)
captured, so the magic and the command line share one code path. Two differences, both for the
notebook's sake: `get` returns an `ObjectList` (a table in the notebook, `.df` for pandas) built with
the CLI's own `printers.table_rows`, and user errors show as one short red line, never a traceback.

Which cluster: the kernel's current one (nbkube.notebook.current: a LocalCluster or `connect()`
handle running in this kernel, the newest unless `%nbkube use NAME` chose another), used
in-process through its Registry, so even a `sqlite://:memory:` store works. `--store URL` (or
$NBKUBE_STORE) names a store instead. With neither, a verb that needs a cluster answers with one
line saying how to get one; it never falls back to the CLI's default store in ~/.nbkube.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import shlex
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, line_cell_magic, magics_class

from nbkube.notebook import current
from nbkube.notebook.current import NO_CLUSTER_HINT, get_current, set_current
from nbkube.notebook.html import error_line
from nbkube.notebook.views import ObjectList

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from nbkube.registry.registry import Registry

__all__ = ["NbkubeMagics", "set_current", "get_current", "load_ipython_extension", "unload_ipython_extension"]

log = logging.getLogger(__name__)

_cli_lock = threading.Lock()  # main() swaps sys.stdout/stdin: one magic at a time
_FILE_VERBS = ("apply", "create", "delete", "replace")


class UserError(Exception):
    """A problem to show as one red line."""


# -- running the CLI -------------------------------------------------------------------------------


class _Borrowed:
    """The kernel's registry lent to one CLI invocation: `main` closes its registry, not ours."""

    def __init__(self, api: Registry):
        self._api = api

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    def close(self) -> None:
        pass


def _has_store_arg(argv: list[str]) -> bool:
    return any(a == "--store" or a.startswith("--store=") for a in argv)


def _no_cluster(store_url: str) -> Registry:
    """open_registry while the kernel has no cluster: the verb ends with the hint as its one error line."""
    from nbkube.errors import NbkubeError

    raise NbkubeError(NO_CLUSTER_HINT)


@contextlib.contextmanager
def _cli_target(argv: list[str]) -> Iterator[list[str]]:
    """argv for main(), pointed at the current cluster; a Registry is lent through the CLI's
    open_registry for the duration of the call (with no cluster, open_registry gives the hint, so
    verbs that never open the store, such as `version`, still work)."""
    target = get_current()
    if _has_store_arg(argv) or (target is None and os.environ.get("NBKUBE_STORE")):
        yield argv
        return
    if isinstance(target, str):
        yield ["--store", target, *argv]
        return
    from nbkube.cli import context

    original = context.open_registry
    if target is None:
        context.open_registry = _no_cluster
    else:
        context.open_registry = lambda _url: _Borrowed(target)  # type: ignore[assignment,return-value]
    try:
        # the URL is unused (open_registry is replaced) but keeps the CLI from touching ~/.nbkube
        yield ["--store", "sqlite://:memory:", *argv]
    finally:
        context.open_registry = original


def run_cli(argv: list[str], stdin: str | None = None) -> tuple[int, str, str]:
    """`nbkube.cli.main(argv)` with output captured: (exit code, stdout, stderr)."""
    from nbkube.cli import main

    out, err = io.StringIO(), io.StringIO()
    with _cli_lock, _cli_target(argv) as full:
        old_in = sys.stdin
        sys.stdin = io.StringIO(stdin if stdin is not None else "")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(full)
                except SystemExit as exc:  # a handler that exits directly
                    code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stdin = old_in
    return code, out.getvalue(), err.getvalue()


def _error_message(stderr: str, code: int) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    real = [ln for ln in lines if not ln.startswith("warning:")]
    if real:
        return real[-1]
    return lines[-1] if lines else f"nbkube exited with code {code}"


# -- get -------------------------------------------------------------------------------------------


def _get_parser() -> argparse.ArgumentParser:
    # Only the shapes `get` can turn into one table; anything else goes to the CLI as text.
    p = argparse.ArgumentParser(prog="nbkube get", add_help=False, exit_on_error=False)
    p.add_argument("kind")
    p.add_argument("names", nargs="*")
    p.add_argument("-n", "--namespace", default=None)
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-l", "--selector", default=None)
    p.add_argument("-o", "--output", choices=("wide",), default=None)
    p.add_argument("--store", default=None)
    return p


@contextlib.contextmanager
def _registry(store: str | None) -> Iterator[Registry]:
    target = get_current()
    if store is None and target is not None and not isinstance(target, str):
        yield target
        return
    from nbkube.cli.context import open_registry

    url = store or (target if isinstance(target, str) else None) or os.environ.get("NBKUBE_STORE")
    if not url:
        raise UserError(f"error: {NO_CLUSTER_HINT}")
    api = open_registry(url)
    try:
        yield api
    finally:
        api.close()


def get_objects(args: list[str]) -> ObjectList | None:
    """`get` as an ObjectList with the CLI's columns; None when the arguments need the CLI itself."""
    try:
        ns = _get_parser().parse_args(args)
    except (argparse.ArgumentError, SystemExit):
        return None
    if "," in ns.kind or "/" in ns.kind or ns.kind == "all":
        return None
    from nbkube.api import kinds
    from nbkube.api.printers import table_rows
    from nbkube.errors import NbkubeError

    try:
        info = kinds.lookup(ns.kind)
        namespace = "" if (ns.all_namespaces or not info.namespaced) else (ns.namespace or "default")
        with _registry(ns.store) as api:
            if ns.names:
                objs = [api.get(info.kind, name, namespace) for name in ns.names]
            else:
                objs, _rv = api.list(info.kind, namespace, label_selector=ns.selector)
    except NbkubeError as exc:
        raise UserError(f"error: {exc}") from None
    objs = sorted(objs, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"].get("name", "")))
    headers, rows = table_rows(info.kind, objs, ns.output == "wide", show_namespace=bool(ns.all_namespaces))
    return ObjectList(info.kind, objs, headers=headers, rows=rows)


# -- the magic -------------------------------------------------------------------------------------


class CliText:
    """What a verb printed, shown as preformatted text."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text.rstrip("\n")

    def _repr_html_(self) -> str:
        from html import escape

        return f"<pre>{escape(self.text.rstrip())}</pre>"


def show_error(message: str) -> None:
    """One red line (HTML in a notebook, plain text elsewhere)."""
    try:
        from IPython.display import display

        display({"text/html": error_line(message), "text/plain": message}, raw=True)
    except Exception:  # no display machinery: plain stderr still tells the user
        print(message, file=sys.stderr)


def use_cluster(args: list[str]) -> CliText:
    """`%nbkube use [NAME]`: switch the magics to the running cluster NAME; without NAME, list them."""
    if len(args) > 1:
        raise UserError("error: use takes one cluster name")
    if args:
        try:
            current.use(args[0])
        except KeyError as exc:
            raise UserError(f"error: {exc.args[0]}") from None
    clusters = current.running()
    if not clusters:
        return CliText(NO_CLUSTER_HINT + "\n")
    chosen = current.current_cluster()
    lines = [f"{'*' if c is chosen else ' '} {name}  {c!r}" for name, c in clusters.items()]
    return CliText("\n".join(lines) + "\n")


def run_magic(line: str, cell: str | None = None) -> Any:
    """The body of `%nbkube` / `%%nbkube`, usable without IPython (returns what the cell shows)."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        show_error(f"error: cannot parse the command line: {exc}")
        return None
    if not argv:
        argv = ["--help"]
    try:
        if argv[0] == "use" and cell is None:
            return use_cluster(argv[1:])
        if argv[0] == "get" and cell is None:
            result = get_objects(argv[1:])
            if result is not None:
                return result
        if cell is not None and argv[0] in _FILE_VERBS and "-f" not in argv and "--filename" not in argv:
            argv += ["-f", "-"]
        code, out, err = run_cli(argv, stdin=cell)
    except UserError as exc:
        show_error(str(exc))
        return None
    except Exception as exc:  # a bug below us: still one line in the notebook, details in the log
        log.debug("nbkube magic failed", exc_info=True)
        show_error(f"error: {type(exc).__name__}: {exc}")
        return None
    if code != 0:
        if out.strip():
            print(out, end="")
        show_error(_error_message(err, code))
        return None
    if err.strip():
        print(err, end="", file=sys.stderr)
    return CliText(out) if out.strip() else None


def cli_help() -> str:
    """The CLI parser's help text (the magic's docstring, so `%nbkube?` shows it)."""
    try:
        from nbkube.cli import build_parser

        with contextlib.redirect_stderr(io.StringIO()):
            text = build_parser().format_help()
    except Exception as exc:  # help must never break loading the extension
        return f"nbkube CLI help unavailable: {exc}"
    return (
        "%nbkube ARGS      run an nbkube command (get returns a table with .df)\n"
        "%%nbkube apply    apply the YAML in the cell body (same as `nbkube apply -f -`)\n"
        "%nbkube use NAME  talk to the running cluster NAME of this kernel (no NAME: list them)\n\n" + text
    )


@magics_class
class NbkubeMagics(Magics):
    @line_cell_magic
    def nbkube(self, line: str, cell: str | None = None) -> Any:
        return run_magic(line, cell)


def load_ipython_extension(ip: InteractiveShell) -> None:
    NbkubeMagics.nbkube.__doc__ = cli_help()
    ip.register_magics(NbkubeMagics)


def unload_ipython_extension(ip: InteractiveShell) -> None:
    # IPython has no unregister for magics; dropping the names makes `%nbkube` unknown again.
    manager = ip.magics_manager
    if manager is not None:
        for kind in ("line", "cell"):
            manager.magics[kind].pop("nbkube", None)
