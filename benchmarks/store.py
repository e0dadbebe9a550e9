"""Store benchmark: our backends against the bare client of the same database, in one run.

For each backend (SQLite file, real etcd) it measures
  - raw puts/s and gets/s through the bare client (the `sqlite3` module on a plain table with the
    same pragmas; for etcd the same generated gRPC stubs and channel options the EtcdStore uses,
    one Put / Range each),
  - our Store's create/s and get/s,
  - watch delivery latency p50/p99: from just before `create()` to the watcher thread holding the
    event,
  - the registry's ConfigMap create/s and update/s (see `registry_rates`),
and prints a table with the ratios store/raw and registry/raw. The etcd column uses `--etcd URL`
or a private etcd launched for the run.

    python benchmarks/store.py --backend all -n 2000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from common import Row, Skip, pct_label, percentile

from nbkube.store import open_store
from nbkube.store.base import Store
from nbkube.store.etcd_server import etcd_available, launch_etcd

VALUE = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"k":"v"}}' * 4  # ~320 B


def rate(n: int, fn: Callable[[int], object]) -> float:
    """Calls per second of fn(0..n-1)."""
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


# --- raw clients ----------------------------------------------------------------------------------


def raw_sqlite_rates(directory: str, n: int) -> tuple[float, float]:
    conn = sqlite3.connect(os.path.join(directory, "raw.db"), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA busy_timeout = 2000")
    conn.execute("CREATE TABLE kv (name TEXT PRIMARY KEY, value BLOB NOT NULL)")
    # Autocommit mode: one transaction per INSERT, as the store does per write.
    puts = rate(n, lambda i: conn.execute("INSERT INTO kv (name, value) VALUES (?, ?)", (f"/raw/{i}", VALUE)))
    gets = rate(n, lambda i: conn.execute("SELECT value FROM kv WHERE name = ?", (f"/raw/{i}",)).fetchone())
    conn.close()
    return puts, gets


def raw_etcd_rates(url: str, n: int) -> tuple[float, float]:
    """Put/s and Range/s straight through the generated gRPC stubs the EtcdStore itself calls
    (same channel options, same deadline), without the Store's checks and compare-and-swap."""
    import grpc
    from etcd3 import etcdrpc

    from nbkube.store.etcd import _CHANNEL_OPTIONS, etcd_targets

    channel = grpc.insecure_channel(etcd_targets(url)[0], options=_CHANNEL_OPTIONS)
    kv = etcdrpc.KVStub(channel)
    run = uuid.uuid4().hex[:8]
    try:
        puts = rate(n, lambda i: kv.Put(etcdrpc.PutRequest(key=f"/raw-{run}/{i}".encode(), value=VALUE), timeout=5))
        gets = rate(n, lambda i: kv.Range(etcdrpc.RangeRequest(key=f"/raw-{run}/{i}".encode()), timeout=5))
        prefix = f"/raw-{run}/".encode()
        kv.DeleteRange(etcdrpc.DeleteRangeRequest(key=prefix, range_end=prefix[:-1] + b"0"), timeout=30)
    finally:
        channel.close()
    return puts, gets


# --- our store ------------------------------------------------------------------------------------


def store_rates(store: Store, n: int) -> tuple[float, float]:
    run = uuid.uuid4().hex[:8]
    creates = rate(n, lambda i: store.create(f"/bench-{run}/{i}", VALUE))
    gets = rate(n, lambda i: store.get(f"/bench-{run}/{i}"))
    return creates, gets


def watch_latency(store: Store, n: int) -> tuple[float, float]:
    """p50 and p99 in ms of create() -> event in the watcher thread, one write at a time."""
    prefix = f"/watch-{uuid.uuid4().hex[:8]}/"
    watch = store.watch(prefix, store.current_revision())
    received: dict[str, float] = {}
    arrived = threading.Event()

    def consume() -> None:
        for event in watch:
            received[event.kv.key] = time.perf_counter()
            arrived.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    latencies = []
    try:
        for i in range(n):
            key = f"{prefix}{i}"
            arrived.clear()
            start = time.perf_counter()
            store.create(key, VALUE)
            if not arrived.wait(5.0):
                raise RuntimeError(f"watch event for {key} did not arrive within 5 s")
            latencies.append((received[key] - start) * 1000)
    finally:
        watch.cancel()
        thread.join(5)
    latencies.sort()
    return statistics.median(latencies), percentile(latencies, 99)


# --- registry -------------------------------------------------------------------------------------


def registry_rates(store: Store, n: int) -> dict[str, float]:
    """Registry ConfigMap create/s and update/s over `store` (validation, defaulting, encoding)."""
    from nbkube.registry.registry import Registry

    registry: Any = Registry(store)
    run = uuid.uuid4().hex[:6]

    def configmap(i: int) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"bench-{run}-{i}", "namespace": "default"},
            "data": {"key": "value"},
        }

    registry.create(configmap(-1))  # creates the default namespace on demand, outside the timing
    created: list[dict[str, Any]] = []
    creates = rate(n, lambda i: created.append(registry.create(configmap(i))))

    def update(i: int) -> None:
        obj = dict(created[i])
        obj["data"] = {"key": f"changed-{i}"}
        registry.update(obj)

    updates = rate(n, update)
    return {"create": creates, "update": updates}


# --- driver ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def etcd_for_run(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with launch_etcd() as server:
        yield server.url


def bench_backend(name: str, n: int, watch_n: int, etcd_url: str | None, rounds: int = 3) -> dict[str, Any]:
    """One backend's figures. Raw client, Store and Registry take turns for `rounds` rounds (each on
    fresh keys, a SQLite round on fresh files), so a change in the machine's load hits all three
    alike; each rate is the median over the rounds."""
    row: dict[str, Any] = {"backend": name}
    tmp = tempfile.mkdtemp(prefix="nbkube-bench-")
    samples: dict[str, list[float]] = {k: [] for k in ("raw_put", "raw_get", "create", "get", "reg_create", "reg_update")}
    try:
        with contextlib.ExitStack() as stack:
            if name == "sqlite":
                open_fresh = lambda tag: open_store(f"sqlite://{tmp}/{tag}.db")  # noqa: E731
                row["url"] = f"sqlite://{tmp}/store.db"
            else:
                url = stack.enter_context(etcd_for_run(etcd_url))
                open_fresh = lambda tag: open_store(url)  # noqa: E731
                row["url"] = url
            for r in range(rounds):
                if name == "sqlite":
                    rdir = os.path.join(tmp, f"raw{r}")
                    os.mkdir(rdir)
                    put, get = raw_sqlite_rates(rdir, n)
                else:
                    put, get = raw_etcd_rates(url, n)
                samples["raw_put"].append(put)
                samples["raw_get"].append(get)
                with contextlib.closing(open_fresh(f"store{r}")) as store:
                    create, get = store_rates(store, n)
                samples["create"].append(create)
                samples["get"].append(get)
                with contextlib.closing(open_fresh(f"registry{r}")) as reg_store:
                    reg = registry_rates(reg_store, n)
                samples["reg_create"].append(reg["create"])
                samples["reg_update"].append(reg["update"])
            med = {k: statistics.median(v) for k, v in samples.items()}
            row.update(raw_put=med["raw_put"], raw_get=med["raw_get"], create=med["create"], get=med["get"])
            row["registry"] = {"create": med["reg_create"], "update": med["reg_update"]}
            with contextlib.closing(open_fresh("watch")) as store:
                row["watch_p50"], row["watch_p99"] = watch_latency(store, watch_n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return row


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'backend':8} {'raw put/s':>10} {'raw get/s':>10} {'create/s':>10} {'get/s':>10} "
        f"{'create/raw':>10} {'get/raw':>8} {'reg create/s':>12} {'reg update/s':>12} {'reg/raw':>8} "
        f"{'watch p50':>10} {'watch p99':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        reg = r["registry"]
        reg_cols = f"{reg['create']:>12.0f} {reg['update']:>12.0f} {reg['create'] / r['raw_put']:>8.0%}"
        print(
            f"{r['backend']:8} {r['raw_put']:>10.0f} {r['raw_get']:>10.0f} {r['create']:>10.0f} {r['get']:>10.0f} "
            f"{r['create'] / r['raw_put']:>10.0%} {r['get'] / r['raw_get']:>8.0%} {reg_cols} "
            f"{r['watch_p50']:>8.2f}ms {r['watch_p99']:>8.2f}ms"
        )


def rows(quick: bool = False) -> list[Row]:
    """The figures for benchmarks/run.py: each backend's Store and Registry against its bare client."""
    n, watch_n, rounds = (300, 50, 3) if quick else (2000, 300, 5)
    backends = ["sqlite", "etcd"]
    if not etcd_available():
        raise Skip("no etcd binary on PATH (apt-get install etcd-server)")
    out: list[Row] = []
    turns = f"median of {rounds} rounds of {n}, raw and ours in turn"
    for name in backends:
        r = bench_backend(name, n, watch_n, None, rounds)
        label = "SQLite file" if name == "sqlite" else "etcd"
        raw = "raw sqlite3 INSERT (autocommit)" if name == "sqlite" else "raw etcd Put (same gRPC stubs)"
        out += [
            Row(f"Store create, {label}", r["create"], "ops/s", raw, r["raw_put"], "same-run", samples=rounds, note=turns),
            Row(f"Registry create (ConfigMap), {label}", r["registry"]["create"], "ops/s", raw, r["raw_put"],
                "same-run", samples=rounds, note=turns),
            Row(f"Store get, {label}", r["get"], "ops/s",
                "raw sqlite3 SELECT" if name == "sqlite" else "raw etcd Range (same gRPC stubs)",
                r["raw_get"], "same-run", samples=rounds, note=turns),
            Row(f"watch delivery p99, {label}", r["watch_p99"], "ms", samples=watch_n,
                note=f"{pct_label(99, watch_n)}; p50 {r['watch_p50']:.2f} ms"),
        ]  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "etcd", "all"], default="all")
    parser.add_argument("-n", type=int, default=2000, help="writes and reads per measurement (default 2000)")
    parser.add_argument("--watch-n", type=int, default=300, help="events for the latency measurement")
    parser.add_argument("--etcd", metavar="URL", help="an etcd to use instead of launching a private one")
    args = parser.parse_args(argv)

    backends = ["sqlite", "etcd"] if args.backend == "all" else [args.backend]
    if "etcd" in backends and not args.etcd and not etcd_available():
        if args.backend == "etcd":
            print("no etcd binary on PATH and no --etcd URL given", file=sys.stderr)
            return 1
        print("etcd: skipped (no etcd binary on PATH; pass --etcd URL)", file=sys.stderr)
        backends.remove("etcd")
    rows = [bench_backend(b, args.n, args.watch_n, args.etcd) for b in backends]
    print(f"n = {args.n} per measurement, {args.watch_n} watch events, value {len(VALUE)} bytes")
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
