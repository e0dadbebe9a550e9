"""Server-side apply latency of a Deployment through the API against a plain PUT of the same object.

Why: server-side apply does more than an update (field sets of the configuration and of the live
object, the merge, the prune, the conflict check, managedFields encoded), and `nbkube apply` over
the API uses it for every object; this measures what that costs per request.
In one process, an API server (HTTPS, the admin's client certificate, one kept-alive connection)
over an in-memory SQLite registry serves two Deployments with three containers each:
  - apply: PATCH application/apply-patch+yaml (fieldManager=bench), replicas alternating so that
    every request is a real write; each followed by the same configuration again (nothing to write);
  - baseline: PUT of the full object as last read, replicas alternating the same way (the registry
    records that write's managedFields too, as every API write).
The three requests take turns, so that load from elsewhere on the machine falls on all of them.
Median and p90 latency of each; the ratio apply/PUT is printed.

Usage: python benchmarks/apply.py [--requests 300]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from nbkube.apiserver import serve  # noqa: E402
from nbkube.apiserver.authn import ADMIN_USER  # noqa: E402
from nbkube.apiserver.security import ADMIN_GROUPS  # noqa: E402
from nbkube.registry.registry import Registry  # noqa: E402
from nbkube.store import open_store  # noqa: E402

PATH = "/apis/apps/v1/namespaces/default/deployments"


def deployment(name: str, replicas: int) -> dict[str, Any]:
    containers = [
        {
            "name": f"c{i}",
            "image": "busybox",
            "args": ["httpd", "-f", "-p", str(8000 + i)],
            "ports": [{"containerPort": 8000 + i}],
            "env": [{"name": "MODE", "value": "bench"}, {"name": "INDEX", "value": str(i)}],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        }
        for i in range(3)
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name, "tier": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": containers}},
        },
    }


def timed(
    conn: http.client.HTTPSConnection, method: str, path: str, body: Any, ctype: str
) -> tuple[float, Any]:
    data = json.dumps(body).encode()
    t0 = time.perf_counter()
    conn.request(method, path, body=data, headers={"Content-Type": ctype, "Accept": "application/json"})
    resp = conn.getresponse()
    text = resp.read()
    elapsed = (time.perf_counter() - t0) * 1000
    if resp.status >= 300:
        raise SystemExit(f"{method} {path}: {resp.status} {text[:300]!r}")
    return elapsed, json.loads(text)


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.9) - 1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="nbk-bench-apply-")
    registry = Registry(open_store("sqlite://:memory:"))
    server = serve(registry, folder=os.path.join(folder, "pki"))
    try:
        pki = server.gate.pki  # type: ignore[attr-defined]
        ctx = pki.client_ssl_context(*pki.issue_client_cert(ADMIN_USER, ADMIN_GROUPS))
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=30, context=ctx)
        apply_path = f"{PATH}/ssa?fieldManager=bench"
        timed(conn, "PATCH", apply_path, deployment("ssa", 1), "application/apply-patch+yaml")
        _t, live = timed(conn, "POST", f"{PATH}?fieldManager=bench", deployment("put", 1), "application/json")
        applies, unchanged, puts = [], [], []
        # interleaved, so that the three see the same load from whatever else runs on the machine
        for i in range(args.requests):
            config = deployment("ssa", 2 + i % 2)
            ms, _obj = timed(conn, "PATCH", apply_path, config, "application/apply-patch+yaml")
            applies.append(ms)
            ms, _obj = timed(conn, "PATCH", apply_path, config, "application/apply-patch+yaml")
            unchanged.append(ms)
            live["spec"]["replicas"] = 2 + i % 2
            ms, live = timed(conn, "PUT", f"{PATH}/put?fieldManager=bench", live, "application/json")
            puts.append(ms)
        conn.close()
    finally:
        server.stop()
        registry.close()
    a_med, a_p90 = summary(applies)
    u_med, u_p90 = summary(unchanged)
    p_med, p_p90 = summary(puts)
    print(f"Deployment (3 containers) through the API, {args.requests} requests each, {os.cpu_count()} cores")
    print(f"{'request':<34}{'median ms':>10}{'p90 ms':>10}")
    print(f"{'server-side apply (a write)':<34}{a_med:>10.2f}{a_p90:>10.2f}")
    print(f"{'server-side apply (unchanged)':<34}{u_med:>10.2f}{u_p90:>10.2f}")
    print(f"{'PUT (baseline)':<34}{p_med:>10.2f}{p_p90:>10.2f}")
    print(f"ratio apply/PUT: {a_med / p_med:.2f}x (unchanged apply/PUT: {u_med / p_med:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
