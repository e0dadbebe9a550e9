"""API request latency with HTTPS, authentication and RBAC, against the same server without them.

Why: every request to nbkube's API server now passes TLS, the authenticator and the RBAC
authorizer; the target is a p50 at most 1.3x that of the same server answering the same requests
over plain HTTP with no gate, with 1,000 objects stored. In one process, same run:
  1. an in-memory SQLite registry with 1,000 ConfigMaps in 10 namespaces and 1,000 RoleBindings
     (so RBAC has real work: the user is bound through one of them);
  2. the secure server (`serve`: HTTPS, client certificate of a user bound to `view` in one
     namespace) and a baseline server on the same registry with an open gate over plain HTTP;
  3. N GETs of single objects and N LISTs of one namespace (100 objects) on a kept-alive
     connection to each, interleaved in rounds so both see the same machine load.
Prints p50/p99 per request kind and the ratio of the secure server to the baseline.

Usage: python benchmarks/api_auth.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from typing import Any

from nbkube.apiserver import serve
from nbkube.apiserver.resources import Request, Response
from nbkube.apiserver.routing import Route
from nbkube.apiserver.server import ApiServer, RequestContext
from nbkube.registry.registry import Registry
from nbkube.store import open_store

OBJECTS = 1000
NAMESPACES = 10
BINDINGS = 1000
TARGET = 1.3


class OpenGate:
    """The baseline: no TLS, everyone is the admin, nothing is checked."""

    ssl_context = None

    def authenticate(self, ctx: RequestContext) -> None:
        ctx.user = None

    def authorize(self, ctx: RequestContext, route: Route | None) -> None:
        return None

    def handle(self, ctx: RequestContext, route: Route, req: Request) -> Response | None:
        return None

    def write_kubeconfig(self, path: str, server_url: str, *, context: str = "nbkube") -> str:
        raise NotImplementedError("the baseline server has no credentials")

    def stop(self) -> None:
        return None


def _fill(registry: Registry) -> None:
    for n in range(NAMESPACES):
        registry.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"ns{n}"}})
    for i in range(OBJECTS):
        registry.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"cm{i}", "namespace": f"ns{i % NAMESPACES}"},
                "data": {"k": "v" * 64},
            }
        )
    for i in range(BINDINGS):
        registry.create(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": f"rb{i}", "namespace": f"ns{i % NAMESPACES}"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": f"user{i}"}],
            }
        )


def _timed(conn: http.client.HTTPConnection, path: str) -> float:
    start = time.perf_counter()
    conn.request("GET", path, headers={"Accept": "application/json"})
    resp = conn.getresponse()
    resp.read()
    elapsed = time.perf_counter() - start
    if resp.status != 200:
        raise SystemExit(f"GET {path}: {resp.status}")
    return elapsed


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="requests per kind and server")
    args = ap.parse_args(argv)
    registry = Registry(open_store("sqlite://:memory:"))
    _fill(registry)
    with tempfile.TemporaryDirectory(prefix="nbkube-bench-") as folder:
        secure = serve(registry, folder=folder)
        plain = ApiServer(registry, OpenGate()).start()  # type: ignore[arg-type]
        try:
            pki = secure.gate.pki  # type: ignore[attr-defined]
            # user5 is bound to view in ns5 by rb5 (one RoleBinding among 1,000)
            ctx = pki.client_ssl_context(*pki.issue_client_cert("user5", []))
            conns: dict[str, Any] = {
                "https+auth+rbac": http.client.HTTPSConnection("127.0.0.1", secure.port, context=ctx),
                "plain, no gate": http.client.HTTPConnection("127.0.0.1", plain.port),
            }
            paths = {
                "get": "/api/v1/namespaces/ns5/configmaps/cm5",
                "list": "/api/v1/namespaces/ns5/configmaps",
            }
            samples: dict[tuple[str, str], list[float]] = {(s, k): [] for s in conns for k in paths}
            for conn in conns.values():  # warm up: TLS handshake, caches
                for path in paths.values():
                    for _ in range(20):
                        _timed(conn, path)
            for _ in range(args.requests):
                for kind, path in paths.items():
                    for conn_name, conn in conns.items():
                        samples[(conn_name, kind)].append(_timed(conn, path))
        finally:
            secure.stop()
            plain.stop()
            registry.close()
    print(f"{OBJECTS} ConfigMaps, {BINDINGS} RoleBindings, {args.requests} requests per kind and server")
    print(f"{'request':<6} {'server':<18} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    worst = 0.0
    for kind in paths:
        p50s = {}
        for conn_name in conns:
            vals = samples[(conn_name, kind)]
            p50s[conn_name] = _pct(vals, 0.5)
            print(
                f"{kind:<6} {conn_name:<18} {_pct(vals, 0.5):8.3f} {_pct(vals, 0.99):8.3f} "
                f"{statistics.fmean(vals) * 1e3:8.3f}"
            )
        ratio = p50s["https+auth+rbac"] / p50s["plain, no gate"]
        worst = max(worst, ratio)
        print(f"{kind:<6} ratio p50 secure/plain: {ratio:.2f}x (target <= {TARGET}x)")
    print(f"worst p50 ratio {worst:.2f}x: {'met' if worst <= TARGET else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
