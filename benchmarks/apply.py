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
Rows: median and p90 latency of applies against the PUTs.

Usage: python benchmarks/apply.py [--requests 300]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

from common import Row, percentile, print_rows

from nbkube.apiserver import serve
from nbkube.apiserver.authn import ADMIN_USER
from nbkube.apiserver.security import ADMIN_GROUPS
from nbkube.registry.registry import Registry
from nbkube.store import open_store

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


def measure(requests: int) -> dict[str, list[float]]:
    """Latency samples in ms of applies that write, unchanged applies and PUTs, taking turns."""
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
        for i in range(requests):
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
        shutil.rmtree(folder, ignore_errors=True)
    return {"apply": applies, "unchanged": unchanged, "put": puts}


def rows_for(requests: int) -> list[Row]:
    m = measure(requests)
    put = statistics.median(m["put"])
    what = "Deployment (3 containers) through the API, HTTPS"
    return [
        Row("server-side apply (a write), median", statistics.median(m["apply"]), "ms",
            baseline="PUT of the same object", baseline_value=put, baseline_kind="same-run",
            samples=requests, note=what),
        Row("server-side apply (unchanged), median", statistics.median(m["unchanged"]), "ms",
            baseline="PUT of the same object", baseline_value=put, baseline_kind="same-run",
            samples=requests, note=what),
        Row("server-side apply (a write), p90", percentile(m["apply"], 90), "ms",
            baseline="PUT of the same object", baseline_value=percentile(m["put"], 90),
            baseline_kind="same-run", samples=requests, note=what),
    ]  # fmt: skip


def rows(quick: bool = False) -> list[Row]:
    return rows_for(40 if quick else 300)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    print_rows(rows_for(args.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
