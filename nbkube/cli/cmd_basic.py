"""The basic `nbkube` verbs: apply, get, describe, delete, version, api-resources.

Registered by `nbkube.cli.main` through `COMMAND_MODULES` (see the package docstring). Each handler
only translates arguments into registry calls and prints with `nbkube.api.printers`; every rule
about objects (defaults, validation, idempotent apply) lives in the api/ and registry/ layers.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from nbkube import __version__
from nbkube.api import kinds
from nbkube.api.kinds import KindInfo
from nbkube.api.meta import Obj
from nbkube.api.printers import format_table, resource_ref, table_rows
from nbkube.api.serialization import dump_json, dump_yaml, load_file
from nbkube.cli.context import Context, add_namespace_args, add_output_arg
from nbkube.cli.describe import describe
from nbkube.errors import BadRequest, FieldError, Invalid, ManifestError, NotFound

__all__ = ["register", "load_manifest_args", "parse_targets", "Target"]

# What `nbkube get all` means (kubectl's "all" category, for the kinds nbkube has).
_ALL = ("Pod", "Service", "ReplicationController", "DaemonSet", "Deployment", "ReplicaSet")
_MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("apply", help="create or update objects from manifests")
    p.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="FILE",
        help="manifest file, directory of manifests, or - for stdin (repeatable)",
    )
    p.set_defaults(handler=_apply)

    p = subparsers.add_parser("get", help="list objects as a table, or print them as yaml/json")
    p.add_argument("resources", nargs="+", metavar="KIND[,KIND...] [NAME...] | KIND/NAME...")
    add_namespace_args(p)
    p.add_argument("-l", "--selector", default=None, help="label selector, e.g. app=nginx,tier in (web)")
    add_output_arg(p)
    p.add_argument("--show-labels", action="store_true", help="add a LABELS column")
    p.add_argument(
        "-w",
        "--watch",
        action="store_true",
        help="after the list, print each change as it happens (Ctrl-C stops)",
    )
    p.add_argument(
        "--watch-timeout",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="with -w: stop watching after this many seconds (default 0: until Ctrl-C)",
    )
    p.set_defaults(handler=_get)

    p = subparsers.add_parser("describe", help="show an object in detail, with its events")
    p.add_argument("resources", nargs="+", metavar="KIND [NAME_PREFIX...] | KIND/NAME...")
    add_namespace_args(p)
    p.add_argument("-l", "--selector", default=None, help="label selector")
    p.set_defaults(handler=_describe)

    p = subparsers.add_parser("delete", help="delete objects by kind and name, selector, or manifest")
    p.add_argument("resources", nargs="*", metavar="KIND NAME... | KIND/NAME...")
    p.add_argument(
        "-f", "--filename", action="append", metavar="FILE", help="delete what these manifests name"
    )
    add_namespace_args(p, all_namespaces=False)
    p.add_argument(
        "-l", "--selector", default=None, help="delete every object of KIND matching this selector"
    )
    p.add_argument("--all", action="store_true", help="delete every object of KIND in the namespace")
    p.add_argument(
        "--cascade",
        default="background",
        choices=("background", "orphan", "true", "false"),
        help="background (default): dependents are garbage-collected; orphan (or false): they are kept",
    )
    p.add_argument("--ignore-not-found", action="store_true", help="treat a missing object as deleted")
    p.set_defaults(handler=_delete)

    p = subparsers.add_parser("version", help="print the nbkube version")
    p.set_defaults(handler=_version)

    p = subparsers.add_parser("api-resources", help="list the kinds nbkube serves and their short names")
    p.set_defaults(handler=_api_resources)


# --- manifests -----------------------------------------------------------------------------------


def _expand(paths: Iterable[str]) -> list[str]:
    files: list[str] = []
    for path in paths:
        if path != "-" and os.path.isdir(path):
            found = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(_MANIFEST_SUFFIXES))
            if not found:
                raise ManifestError(f"{path}: no .yaml, .yml or .json files in this directory")
            files += found
        else:
            files.append(path)
    return files


def load_manifest_args(paths: Iterable[str]) -> list[tuple[Obj, str]]:
    """Every object of every file (each loaded and validated in full first), with its origin.

    The origin (`file: kind/name`) is what error messages name. Duplicates across files are
    refused here, since `load_manifests` only sees one file at a time.
    """
    loaded: list[tuple[Obj, str]] = []
    seen: dict[tuple[str, str, str], str] = {}
    for path in _expand(paths):
        source = "<stdin>" if path == "-" else path
        for obj in load_file(path):
            origin = f"{source}: {resource_ref(obj)}"
            meta = obj.get("metadata") or {}
            if meta.get("name"):
                ident = (str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta["name"]))
                if ident in seen:
                    raise ManifestError(
                        f"{origin}: duplicate object (already defined in {seen[ident].split(':')[0]})"
                    )
                seen[ident] = origin
            loaded.append((obj, origin))
    return loaded


_DOC = re.compile(r"^doc (\d+)(?:: (.*))?$")


def _locate(exc: Invalid, origins: list[str]) -> Invalid:
    """Rewrite the registry's `doc N` (index into the combined list) into `file: kind/name`."""
    fixed = []
    for fe in exc.errors:
        m = _DOC.match(fe.path)
        if m and 1 <= int(m.group(1)) <= len(origins):
            origin = origins[int(m.group(1)) - 1]
            fixed.append(FieldError(f"{origin}: {m.group(2)}" if m.group(2) else origin, fe.message))
        else:
            fixed.append(fe)
    return Invalid(fixed, source=exc.source, kind=exc.kind, name=exc.name)


def _apply(args: argparse.Namespace, ctx: Context) -> int:
    loaded = load_manifest_args(args.filename)
    if not loaded:
        raise ManifestError(f"no objects passed to apply (in {', '.join(args.filename)})")
    try:
        results = ctx.api.apply([obj for obj, _ in loaded])
    except Invalid as exc:
        raise _locate(exc, [origin for _, origin in loaded]) from None
    for obj, action in results:
        ctx.out(f"{resource_ref(obj)} {action}")
    return 0


# --- targets -------------------------------------------------------------------------------------


@dataclass
class Target:
    """One kind to act on, with the names asked for (empty = every object of the kind)."""

    info: KindInfo
    names: list[str] = field(default_factory=list)


def _kinds(word: str) -> list[KindInfo]:
    infos: list[KindInfo] = []
    for part in word.split(","):
        if not part:
            continue
        if part.lower() == "all":
            infos += [kinds.lookup(k) for k in _ALL]
        else:
            infos.append(kinds.lookup(part))
    if not infos:
        raise BadRequest(f'no resource type in "{word}"')
    return infos


def parse_targets(words: list[str]) -> list[Target]:
    """`rc,svc [NAME...]` or `rc/nginx svc/web ...` -> targets, in the order given."""
    if any("/" in w for w in words):
        if not all("/" in w for w in words):
            raise BadRequest(
                "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form"
            )
        targets: list[Target] = []
        for w in words:
            kind, _, name = w.partition("/")
            if not name:
                raise BadRequest(f'"{w}": expected KIND/NAME')
            info = kinds.lookup(kind)
            existing = next((t for t in targets if t.info == info), None)
            if existing:
                existing.names.append(name)
            else:
                targets.append(Target(info, [name]))
        return targets
    infos = _kinds(words[0])
    unique = list(dict.fromkeys(infos))
    return [Target(info, list(words[1:])) for info in unique]


def _namespace(args: argparse.Namespace) -> str:
    """ "" for all namespaces (-A), else the given one or "default"."""
    if getattr(args, "all_namespaces", False):
        if args.namespace:
            raise BadRequest("-n/--namespace and -A/--all-namespaces cannot be used together")
        return ""
    return str(args.namespace or "default")


def _fetch(ctx: Context, target: Target, namespace: str, selector: str | None) -> tuple[list[Obj], list[str]]:
    """The objects a target names; and the NotFound messages for names that do not exist."""
    if not target.names:
        items, _rv = ctx.api.list(
            target.info.kind, namespace if target.info.namespaced else "", label_selector=selector or None
        )
        return items, []
    found, missing = [], []
    for name in target.names:
        try:
            found.append(ctx.api.get(target.info.kind, name, namespace if target.info.namespaced else ""))
        except NotFound as exc:
            missing.append(str(exc))
    return found, missing


# --- get -----------------------------------------------------------------------------------------


def _get(args: argparse.Namespace, ctx: Context) -> int:
    targets = parse_targets(args.resources)
    if args.watch:
        if len(targets) != 1:
            raise BadRequest("you may only watch one kind at a time (-w)")
        return _watch(args, ctx, targets[0], _namespace(args))
    namespace = _namespace(args)
    fetched: list[tuple[Target, list[Obj]]] = []
    errors: list[str] = []
    for target in targets:
        items, missing = _fetch(ctx, target, namespace, args.selector)
        fetched.append((target, items))
        errors += missing
    everything = [obj for _t, items in fetched for obj in items]
    single = len(targets) == 1 and len(targets[0].names) == 1 and not errors
    if args.output in ("json", "yaml"):
        if everything or not errors:
            doc: Obj | list[Obj] = everything[0] if single and everything else everything
            ctx.out.write(dump_json(doc) if args.output == "json" else dump_yaml(doc))
    elif args.output == "name":
        for obj in everything:
            ctx.out(resource_ref(obj))
    else:
        _print_tables(ctx, args, fetched, namespace)
    if errors:
        for message in errors[:-1]:
            ctx.err(f"error: {message}")
        raise NotFound(errors[-1])
    return 0


def _print_tables(
    ctx: Context, args: argparse.Namespace, fetched: list[tuple[Target, list[Obj]]], namespace: str
) -> None:
    several = len(fetched) > 1
    printed = False
    for target, items in fetched:
        if not items:
            continue
        info = target.info
        prefix = ""
        if several:
            prefix = (f"{info.singular}.{info.group}" if info.group else info.singular) + "/"
        headers, rows = table_rows(
            info.kind,
            items,
            args.output == "wide",
            name_prefix=prefix,
            show_namespace=info.namespaced and namespace == "",
        )
        if args.show_labels:
            headers.append("LABELS")
            for obj, row in zip(items, rows, strict=True):
                row.append(
                    ",".join(f"{k}={v}" for k, v in ((obj.get("metadata") or {}).get("labels") or {}).items())
                    or "<none>"
                )
        if printed:
            ctx.out()
        ctx.out(format_table(headers, rows))
        printed = True
    if not printed and not any(t.names for t, _ in fetched):
        namespaced = any(t.info.namespaced for t, _ in fetched)
        where = f" in {namespace} namespace" if namespaced and namespace else ""
        ctx.err(f"No resources found{where}.")


def _print_one(
    ctx: Context, args: argparse.Namespace, info: KindInfo, obj: Obj, namespace: str, header: bool
) -> None:
    if args.output == "json":
        ctx.out.write(dump_json(obj))
    elif args.output == "yaml":
        ctx.out.write("---\n" + dump_yaml(obj))
    elif args.output == "name":
        ctx.out(resource_ref(obj))
    else:
        headers, rows = table_rows(
            info.kind, [obj], args.output == "wide", show_namespace=info.namespaced and namespace == ""
        )
        lines = format_table(headers, rows).splitlines()
        ctx.out("\n".join(lines if header else lines[1:]))


def _watch(args: argparse.Namespace, ctx: Context, target: Target, namespace: str) -> int:
    """`get -w`: the current objects, then one line per change, until Ctrl-C or --watch-timeout."""
    info = target.info
    ns = namespace if info.namespaced else ""
    items, rv = ctx.api.list(info.kind, ns, label_selector=args.selector or None)
    wanted = set(target.names)
    items = [o for o in items if not wanted or o["metadata"].get("name") in wanted]
    for i, obj in enumerate(items):
        _print_one(ctx, args, info, obj, namespace, header=i == 0)
    printed = bool(items)
    watch = ctx.api.watch(info.kind, ns, resource_version=rv, label_selector=args.selector or None)
    deadline = time.monotonic() + args.watch_timeout if args.watch_timeout > 0 else None
    try:
        while True:
            wait = 1.0 if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                return 0
            event = watch.next(timeout=min(wait, 1.0))
            if event is None:
                continue
            if wanted and event.object["metadata"].get("name") not in wanted:
                continue
            _print_one(ctx, args, info, event.object, namespace, header=not printed)
            printed = True
    finally:
        watch.cancel()


# --- describe ------------------------------------------------------------------------------------


def _describe(args: argparse.Namespace, ctx: Context) -> int:
    targets = parse_targets(args.resources)
    namespace = _namespace(args)
    pages: list[Obj] = []
    for target in targets:
        ns = namespace if target.info.namespaced else ""
        if not target.names:
            items, _rv = ctx.api.list(target.info.kind, ns, label_selector=args.selector or None)
            pages += items
            continue
        for name in target.names:
            try:
                pages.append(ctx.api.get(target.info.kind, name, ns))
            except NotFound:
                # as kubectl: a name that is not an object is taken as a prefix (`describe po nginx`)
                items, _rv = ctx.api.list(target.info.kind, ns)
                matches = [o for o in items if str(o["metadata"].get("name", "")).startswith(name)]
                if not matches:
                    raise
                pages += matches
    if not pages:
        ctx.err(f"No resources found{f' in {namespace} namespace' if namespace else ''}.")
        return 0
    events, _rv = ctx.api.list("Event", "")
    ctx.out("\n\n".join(describe(obj, events, api=ctx.api) for obj in pages))
    return 0


# --- delete --------------------------------------------------------------------------------------


def _delete(args: argparse.Namespace, ctx: Context) -> int:
    propagation: Literal["Background", "Orphan"] = (
        "Orphan" if args.cascade in ("orphan", "false") else "Background"
    )
    namespace = str(args.namespace or "default")
    victims: list[tuple[KindInfo, str, str]] = []  # (kind, namespace, name)
    if args.filename:
        if args.resources:
            raise BadRequest("give either -f FILE or KIND NAME, not both")
        for obj, _origin in load_manifest_args(args.filename):
            info = kinds.lookup(str(obj["kind"]))
            meta = obj.get("metadata") or {}
            ns = str(meta.get("namespace") or namespace) if info.namespaced else ""
            victims.append((info, ns, str(meta.get("name", ""))))
    else:
        if not args.resources:
            raise BadRequest("you must provide KIND NAME, KIND/NAME, KIND -l SELECTOR, KIND --all or -f FILE")
        targets = parse_targets(args.resources)
        for target in targets:
            ns = namespace if target.info.namespaced else ""
            if target.names:
                if args.selector or args.all:
                    raise BadRequest("names cannot be combined with -l/--selector or --all")
                victims += [(target.info, ns, name) for name in target.names]
            elif args.selector or args.all:
                items, _rv = ctx.api.list(target.info.kind, ns, label_selector=args.selector or None)
                victims += [(target.info, ns, str(o["metadata"]["name"])) for o in items]
            else:
                raise BadRequest(
                    f"resource(s) were provided, but no name was specified (give a {target.info.singular} name, -l SELECTOR or --all)"
                )
    errors: list[str] = []
    deleted = 0
    for info, ns, name in victims:
        try:
            ctx.api.delete(info.kind, name, ns, propagation=propagation)
        except NotFound as exc:
            if not args.ignore_not_found:
                errors.append(str(exc))
            continue
        deleted += 1
        prefix = f"{info.singular}.{info.group}" if info.group else info.singular
        ctx.out(f'{prefix} "{name}" deleted')
    if not victims and not args.filename:
        ctx.err("No resources found")
    if errors:
        for message in errors[:-1]:
            ctx.err(f"error: {message}")
        raise NotFound(errors[-1])
    return 0


# --- version, api-resources ----------------------------------------------------------------------


def _version(args: argparse.Namespace, ctx: Context) -> int:
    ctx.out(f"nbkube version v{__version__}")
    ctx.out(f"Python {platform.python_version()} ({platform.system()} {platform.machine()})")
    ctx.out(f"Store: {ctx.store_url}")
    return 0


def _api_resources(args: argparse.Namespace, ctx: Context) -> int:
    rows = [
        [info.plural, ",".join(info.short_names), info.api_version, str(info.namespaced).lower(), info.kind]
        for info in sorted(kinds.KINDS, key=lambda i: i.plural)
    ]
    ctx.out(format_table(["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"], rows))
    return 0
