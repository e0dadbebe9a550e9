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
Rows: p50/p99 per request kind, the secure server against the baseline; and, as the floor, the
same TLS with no authn and no RBAC (a third server on the same registry) against the baseline.

Usage: python benchmarks/api_auth.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import time
from typing import Any

from common import Row, pct_label, percentile, print_rows

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
SECURE, TLS_ONLY, PLAIN = "https+auth+rbac", "https, no gate", "plain, no gate"
PATHS = {
    "get": "/api/v1/namespaces/ns5/configmaps/cm5",
    "list": "/api/v1/namespaces/ns5/configmaps",
}


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


class TlsOnlyGate(OpenGate):
    """The floor under the secure server: the same TLS (its own server context), no authn, no RBAC."""

    def __init__(self, ssl_context: Any):
        self.ssl_context = ssl_context


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


def measure(requests: int) -> dict[tuple[str, str], list[float]]:
    """Latency samples in seconds per (server, request kind), `requests` of each, interleaved."""
    registry = Registry(open_store("sqlite://:memory:"))
    _fill(registry)
    with tempfile.TemporaryDirectory(prefix="nbkube-bench-") as folder:
        secure = serve(registry, folder=folder)
        plain = ApiServer(registry, OpenGate()).start()  # type: ignore[arg-type]
        tls_only = ApiServer(registry, TlsOnlyGate(secure.gate.ssl_context)).start()  # type: ignore[arg-type,attr-defined]
        try:
            pki = secure.gate.pki  # type: ignore[attr-defined]
            # user5 is bound to view in ns5 by rb5 (one RoleBinding among 1,000)
            ctx = pki.client_ssl_context(*pki.issue_client_cert("user5", []))
            conns: dict[str, Any] = {
                SECURE: http.client.HTTPSConnection("127.0.0.1", secure.port, context=ctx),
                TLS_ONLY: http.client.HTTPSConnection("127.0.0.1", tls_only.port, context=ctx),
                PLAIN: http.client.HTTPConnection("127.0.0.1", plain.port),
            }
            samples: dict[tuple[str, str], list[float]] = {(s, k): [] for s in conns for k in PATHS}
            for conn in conns.values():  # warm up: TLS handshake, caches
                for path in PATHS.values():
                    for _ in range(20):
                        _timed(conn, path)
            for _ in range(requests):
                for kind, path in PATHS.items():
                    for conn_name, conn in conns.items():
                        samples[(conn_name, kind)].append(_timed(conn, path))
        finally:
            secure.stop()
            plain.stop()
            tls_only.stop()
            registry.close()
    return samples


def rows_for(requests: int) -> list[Row]:
    samples = measure(requests)
    out = []
    for kind in PATHS:
        for q in (50, 99):
            ours = percentile(samples[(SECURE, kind)], q) * 1e3
            base = percentile(samples[(PLAIN, kind)], q) * 1e3
            out.append(
                Row(f"API {kind.upper()} {pct_label(q, requests)}, HTTPS + authn + RBAC ({BINDINGS:,} bindings)",
                    ours, "ms", baseline="same server, plain HTTP, no gate", baseline_value=base,
                    baseline_kind="same-run", samples=requests,
                    note=f"{OBJECTS:,} ConfigMaps; aim: p50 ratio <= {TARGET}")
            )  # fmt: skip
        # the floor: what TLS alone costs over plain HTTP, on the same server code and registry
        floor = percentile(samples[(TLS_ONLY, kind)], 50) * 1e3
        out.append(
            Row(f"API {kind.upper()} p50, HTTPS alone (no authn, no RBAC): the TLS floor", floor, "ms",
                baseline="same server, plain HTTP, no gate", baseline_value=percentile(samples[(PLAIN, kind)], 50) * 1e3,
                baseline_kind="same-run", samples=requests,
                note="the part of the secure server's ratio that TLS alone takes")
        )  # fmt: skip
    return out


def rows(quick: bool = False) -> list[Row]:
    return rows_for(200 if quick else 2000)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="requests per kind and server")
    args = ap.parse_args(argv)
    print_rows(rows_for(args.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
