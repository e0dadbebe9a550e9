"""`nbkube tenant create|delete|list|kubeconfig`: a namespace per user of a shared cluster.

Registered by `nbkube.cli` through COMMAND_MODULES. The handlers only parse and print: what a
tenant is, and how its kubeconfig's credential is chosen, is nbkube/client/tenants.py, which works
on whatever `ctx.api` is: the cluster's store (`--store`, the default) or its API server
(`--kubeconfig ADMIN.kubeconfig`, as the admin).

Over a store that no running API server serves, `create` makes the objects and writes no kubeconfig
(one line says so); `nbkube tenant kubeconfig NAME` writes it once a server runs.
"""

from __future__ import annotations

import argparse

from nbkube.api.printers import age_of, format_table
from nbkube.cli.context import Context
from nbkube.client.tenants import (
    CREDENTIALS,
    DEFAULT_CPU,
    DEFAULT_MEMORY,
    DEFAULT_PODS,
    POD_SECURITY_LEVELS,
    TenantResult,
    Tenants,
)

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tenant",
        help="tenants of a shared cluster: create, delete, list, kubeconfig",
        description="A tenant is a namespace of its own (Pod Security restricted, a quota, default "
        "limits, default-deny network policies) administered by the user of the same name.",
    )
    verbs = p.add_subparsers(dest="tenant_verb", metavar="VERB", required=True)
    c = verbs.add_parser(
        "create", help="make a tenant's namespace, fences and admin binding, and its kubeconfig"
    )
    c.add_argument("name", metavar="NAME", help="the tenant: user and namespace name (a DNS label)")
    c.add_argument(
        "-o",
        "--output",
        metavar="KUBECONFIG",
        default=None,
        help="where to write its kubeconfig (default ./NAME.kubeconfig)",
    )
    c.add_argument(
        "--cpu", default=DEFAULT_CPU, help=f"quota on cpu requests and limits (default {DEFAULT_CPU})"
    )
    c.add_argument(
        "--memory",
        default=DEFAULT_MEMORY,
        help=f"quota on memory requests and limits (default {DEFAULT_MEMORY})",
    )
    c.add_argument("--pods", type=int, default=DEFAULT_PODS, help=f"quota on pods (default {DEFAULT_PODS})")
    c.add_argument(
        "--pod-security",
        choices=POD_SECURITY_LEVELS,
        default="restricted",
        help="the namespace's enforced Pod Security level (default restricted; baseline for clusters on "
        "the process runtime, which cannot apply the seccomp profile restricted demands)",
    )
    _credential_arg(c)
    c.set_defaults(handler=_create)
    k = verbs.add_parser("kubeconfig", help="write a new kubeconfig for an existing tenant")
    k.add_argument("name", metavar="NAME")
    k.add_argument("-o", "--output", metavar="KUBECONFIG", default=None, help="default ./NAME.kubeconfig")
    _credential_arg(k)
    k.set_defaults(handler=_kubeconfig)
    d = verbs.add_parser("delete", help="remove a tenant: its bindings, then its namespace and all in it")
    d.add_argument("name", metavar="NAME")
    d.set_defaults(handler=_delete)
    ls = verbs.add_parser("list", help="tenants with their quota usage")
    ls.set_defaults(handler=_list)


def _credential_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--credential",
        choices=CREDENTIALS,
        default="auto",
        help="certificate: CN=NAME from the cluster CA (its pki/ must be readable here); token: a "
        "ServiceAccount token through the API server; auto (default): the certificate when possible",
    )


def _report(ctx: Context, result: TenantResult, verb: str) -> None:
    for kind, name in result.objects:
        where = "" if kind == "Namespace" else f" -n {result.name}"
        ctx.out(f"{kind.lower()}/{name}{where} created")
    if result.kubeconfig:
        ctx.out(f"kubeconfig {result.kubeconfig} written ({result.credential}; server {result.server})")
        ctx.out(f"use: kubectl --kubeconfig {result.kubeconfig} get pods")
    elif result.note:
        ctx.err(result.note)
    ctx.out(f"tenant/{result.name} {verb}")


def _create(args: argparse.Namespace, ctx: Context) -> int | None:
    result = Tenants(ctx.api).create(
        args.name,
        kubeconfig=args.output,
        cpu=args.cpu,
        memory=args.memory,
        pods=args.pods,
        credential=args.credential,
        pod_security=args.pod_security,
    )
    _report(ctx, result, "created")
    return None


def _kubeconfig(args: argparse.Namespace, ctx: Context) -> int | None:
    result = Tenants(ctx.api).kubeconfig(args.name, args.output, credential=args.credential)
    _report(ctx, result, "kubeconfig written")
    return None


def _delete(args: argparse.Namespace, ctx: Context) -> int | None:
    for kind, name in Tenants(ctx.api).delete(args.name):
        where = "" if kind == "Namespace" else f" -n {args.name}"
        ctx.out(f"{kind.lower()}/{name}{where} deleted")
    ctx.out(f"tenant/{args.name} deleted (what the namespace held goes with it)")
    return None


def _list(args: argparse.Namespace, ctx: Context) -> int | None:
    rows = []
    for t in Tenants(ctx.api).list():
        rows.append(
            [
                t.name,
                t.phase,
                t.usage("pods"),
                t.usage("requests.cpu"),
                t.usage("limits.cpu"),
                t.usage("requests.memory"),
                t.usage("limits.memory"),
                age_of(t.namespace),
            ]
        )
    if not rows:
        ctx.err("No tenants found.")
        return None
    headers = ["NAME", "STATUS", "PODS", "CPU REQ", "CPU LIM", "MEM REQ", "MEM LIM", "AGE"]
    ctx.out(format_table(headers, rows).rstrip("\n"))
    return None
