"""The API server under load: creates/s through HTTPS with the official client, and watch fan-out.

Why: kubectl, controllers on other machines and notebooks all reach the cluster through this
server; the Kubernetes SLO for list/watch is 5 s, and nbkube aims for a watch event p99 of 100 ms.
Same run, on one in-memory SQLite registry served by `serve()` in a child process (so its memory is
its own):
  1. creates/s of ConfigMaps with the official `kubernetes` client over HTTPS (one connection)
     against `Registry.create` of the same objects in process (the floor under the HTTP layer);
  2. W watchers (raw HTTPS watch streams, one thread each, in this process) on the ConfigMaps of a
     namespace, then E ConfigMaps created through the API from another process, each carrying
     its send time: events
     delivered per second (W x E in all), p50/p99 latency from send to a watcher's read, the
     server process's CPU time per delivered event, and its RSS growth per open watch;
  3. the floor under (2): the same W reader threads against a trivial asyncio TLS server that
     pushes each event as bytes encoded once, at the event rate (2) reached. Both share the
     machine's cores with the readers, so (2)'s latency can only be read against this floor.
The machine's load average is printed beside the figures: other work on it moves them.

Usage: python benchmarks/api_load.py [--creates 500] [--watchers 200] [--events 1000] [--rate 0]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import ssl
import sys
import tempfile
import threading
import time
from typing import Any

from common import Row, percentile, print_rows

NAMESPACE = "bench"


def _serve(folder: str, ready: Any, stop: Any) -> None:
    from nbkube.apiserver import serve
    from nbkube.registry.registry import Registry
    from nbkube.store import open_store

    registry = Registry(open_store("sqlite://:memory:"))
    registry.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    server = serve(registry, folder=os.path.join(folder, "pki"))
    ready.put((server.port, server.write_kubeconfig(os.path.join(folder, "kubeconfig"))))
    stop.wait()
    server.stop()
    registry.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serve_floor(pki_folder: str, watchers: int, events: int, rate: float, ready: Any, go: Any) -> None:
    """A trivial watch server: W TLS connections, each event encoded once and written to all."""
    import asyncio

    import uvloop

    from nbkube.security.pki import ClusterPKI

    ctx = ClusterPKI(pki_folder).ensure().server_ssl_context()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        conns: list[asyncio.StreamWriter] = []
        all_in = asyncio.Event()

        async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            conns.append(writer)
            if len(conns) == watchers:
                all_in.set()
            await asyncio.sleep(3600)

        server = await asyncio.start_server(on_conn, "127.0.0.1", 0, ssl=ctx)
        ready.put(server.sockets[0].getsockname()[1])
        await all_in.wait()
        await loop.run_in_executor(None, go.wait)
        start = loop.time()
        for i in range(events):
            obj = _cm(f"e{i}", time.time())
            obj["metadata"].update(uid=f"{i:032x}", resourceVersion=str(1000 + i), creationTimestamp="2026-01-01T00:00:00Z")
            line = json.dumps({"type": "ADDED", "object": obj}, separators=(",", ":")).encode() + b"\n"
            chunk = b"%x\r\n%b\r\n" % (len(line), line)
            for w in conns:
                w.transport.write(chunk)
            await asyncio.sleep(max(0.0, start + (i + 1) / rate - loop.time()))
        await asyncio.sleep(3600)  # the parent ends this process when its readers are done

    uvloop.run(main())


def _floor(pki_folder: str, ctx: ssl.SSLContext, watchers: int, events: int, rate: float) -> dict[str, Any]:
    mp = multiprocessing.get_context("spawn")
    ready, go = mp.Queue(), mp.Event()
    child = mp.Process(target=_serve_floor, args=(pki_folder, watchers, events, rate, ready, go), daemon=True)
    child.start()
    try:
        port = ready.get(timeout=60)
        readers = [_Watcher(port, ctx, events) for _ in range(watchers)]
        for w in readers:
            w.start()
        time.sleep(2.0)
        cpu = _cpu_seconds(child.pid or 0)
        start = time.perf_counter()
        go.set()
        for w in readers:
            w.join(timeout=300)
        elapsed = time.perf_counter() - start
        cpu = _cpu_seconds(child.pid or 0) - cpu
    finally:
        child.kill()
        child.join(timeout=20)
    latencies = [x for w in readers for x in w.latencies]
    return {"delivered": len(latencies), "elapsed": elapsed, "latencies": latencies, "cpu": cpu}


def _create_events(kubeconfig: str, events: int, rate: float, go: Any) -> None:
    """E ConfigMaps through the API, each stamped with its send time; at most `rate` a second
    (0: as fast as one client goes)."""
    import kubernetes

    core = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(config_file=kubeconfig))
    go.wait()
    start = time.monotonic()
    for i in range(events):
        if rate:
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
        core.create_namespaced_config_map(NAMESPACE, _cm(f"e{i}", time.time()))


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _cm(name: str, sent: float | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NAMESPACE}
    if sent is not None:
        meta["annotations"] = {"bench/sent": repr(sent)}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v" * 64}}


def _direct_creates(n: int) -> float:
    from nbkube.registry.registry import Registry
    from nbkube.store import open_store

    registry = Registry(open_store("sqlite://:memory:"))
    registry.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    start = time.perf_counter()
    for i in range(n):
        registry.create(_cm(f"d{i}"))
    elapsed = time.perf_counter() - start
    registry.close()
    return n / elapsed


class _Watcher(threading.Thread):
    """One watch stream, read line by line; the latency of each event from its send time."""

    def __init__(self, port: int, ctx: ssl.SSLContext, expected: int):
        super().__init__(daemon=True)
        raw = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.sock.sendall(
            f"GET /api/v1/namespaces/{NAMESPACE}/configmaps?watch=true&resourceVersion=1 HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\nAccept: application/json\r\n\r\n".encode()
        )
        self.expected = expected
        self.latencies: list[float] = []

    def run(self) -> None:
        buf = b""
        while len(self.latencies) < self.expected:
            chunk = self.sock.recv(65536)
            # the read moment, before this thread parses anything: with 200 reader threads sharing
            # one interpreter, parsing time is the benchmark's, not the server's
            received = time.time()
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                start = line.find(b"{")
                if start < 0:
                    continue  # HTTP headers and chunk sizes
                try:
                    event = json.loads(line[start:])
                except ValueError:
                    continue
                meta = (event.get("object") or {}).get("metadata") or {}
                sent = meta.get("annotations", {}).get("bench/sent")
                if sent is not None:
                    self.latencies.append(received - float(sent))


def measure(creates: int, watchers: int, events: int, rate: float = 0.0) -> dict[str, Any]:
    import kubernetes

    from nbkube.client.kubeconfig import load_kubeconfig
    from nbkube.security.pki import client_ssl_context

    with tempfile.TemporaryDirectory(prefix="nbkube-bench-") as folder:
        mp = multiprocessing.get_context("spawn")
        ready, stop = mp.Queue(), mp.Event()
        child = mp.Process(target=_serve, args=(folder, ready, stop), daemon=True)
        child.start()
        try:
            port, kubeconfig = ready.get(timeout=60)
            client = kubernetes.config.new_client_from_config(config_file=kubeconfig)
            core = kubernetes.client.CoreV1Api(client)
            start = time.perf_counter()
            for i in range(creates):
                core.create_namespaced_config_map(NAMESPACE, _cm(f"c{i}"))
            api_rate = creates / (time.perf_counter() - start)
            direct_rate = _direct_creates(creates)

            target = load_kubeconfig(kubeconfig)
            assert target.ca_pem is not None
            ctx = client_ssl_context(target.ca_pem, target.cert_pem, target.key_pem)
            # the watches start after the creates above: only the timed events count
            rss_before = _rss_kib(child.pid or 0)
            readers = [_Watcher(port, ctx, events) for _ in range(watchers)]
            for w in readers:
                w.start()
            time.sleep(2.0)  # every stream open and idle
            rss_after = _rss_kib(child.pid or 0)
            load = os.getloadavg()[0]
            # the creates from a process of their own: stamped and sent without waiting for the
            # GIL behind 200 reader threads, so the latency is the server's, not this process's
            go = mp.Event()
            creator = mp.Process(target=_create_events, args=(kubeconfig, events, rate, go), daemon=True)
            creator.start()
            time.sleep(1.0)  # its client loaded
            cpu = _cpu_seconds(child.pid or 0)
            start = time.perf_counter()
            go.set()
            creator.join(timeout=300)
            for w in readers:
                w.join(timeout=300)
            elapsed = time.perf_counter() - start
            cpu = _cpu_seconds(child.pid or 0) - cpu
            latencies = [x for w in readers for x in w.latencies]
            for w in readers:
                w.sock.close()
        finally:
            stop.set()
            child.join(timeout=20)
        floor_load = os.getloadavg()[0]
        floor = _floor(os.path.join(folder, "pki"), ctx, watchers, events, len(latencies) / elapsed / watchers)
    return {
        "load": load,
        "floor_load": floor_load,
        "floor": floor,
        "cpu": cpu,
        "api_rate": api_rate,
        "direct_rate": direct_rate,
        "delivered": len(latencies),
        "elapsed": elapsed,
        "latencies": latencies,
        "rss_per_watch_kib": (rss_after - rss_before) / max(1, watchers),
    }


def rows_for(creates: int, watchers: int, events: int, rate: float = 0.0) -> list[Row]:
    m = measure(creates, watchers, events, rate)
    lat = m["latencies"]
    if not lat:
        raise RuntimeError("no watch event reached a watcher")
    fanout = (
        f"{watchers} watchers x {events} events, {m['delivered']:,} of {watchers * events:,} delivered; "
        f"load average {m['load']:.2f} on {os.cpu_count()} cores"
        + (f"; creates paced at {rate:g}/s" if rate else "")
    )
    floor = m["floor"]
    if not floor["latencies"]:
        raise RuntimeError("no event of the trivial server reached a watcher")
    flat = floor["latencies"]
    floor_note = (
        f"{watchers} watchers x {events} events at nbkube's event rate, {floor['delivered']:,} delivered; "
        f"p50 {percentile(flat, 50) * 1e3:.1f} ms; load average {m['floor_load']:.2f}"
    )
    return [
        Row("ConfigMap creates through HTTPS, official Python client", m["api_rate"], "creates/s",
            baseline="Registry.create in process", baseline_value=m["direct_rate"], baseline_kind="same-run",
            samples=creates, note="one connection; the client's per-request cost dominates"),
        Row("watch fan-out delivery", m["delivered"] / m["elapsed"], "events/s", samples=m["delivered"],
            note=fanout),
        Row("watch event send-to-read p99", percentile(lat, 99) * 1e3, "ms", baseline="Kubernetes SLO",
            baseline_value=5000.0, baseline_kind="published",
            source="Kubernetes scalability SLOs (API call latency, list/watch 5 s)", samples=len(lat),
            note=f"{fanout}; p50 {percentile(lat, 50) * 1e3:.1f} ms; nbkube aims at 100 ms"),
        Row("watch send-to-read p99 floor: same readers, trivial server", percentile(flat, 99) * 1e3, "ms",
            samples=len(flat), note=floor_note),
        Row("server CPU per delivered watch event", m["cpu"] / max(1, m["delivered"]) * 1e6, "us",
            baseline="trivial server, bytes encoded once", baseline_kind="same-run",
            baseline_value=floor["cpu"] / max(1, floor["delivered"]) * 1e6, samples=m["delivered"],
            note="user+system time of the server process while the events flow, creates included"),
        Row("server RSS per open watch", m["rss_per_watch_kib"], "KiB", samples=watchers),
    ]  # fmt: skip


def rows(quick: bool = False) -> list[Row]:
    return rows_for(100, 20, 100) if quick else rows_for(500, 200, 1000)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--creates", type=int, default=500)
    ap.add_argument("--watchers", type=int, default=200)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=0.0,
                    help="creates per second while watched (0: as fast as one client goes); a fixed "
                    "rate compares latencies at the same load")  # fmt: skip
    args = ap.parse_args(argv)
    print_rows(rows_for(args.creates, args.watchers, args.events, args.rate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
