"""Cluster DNS: queries/s and p99 latency for Service names vs the same server answering one static record.

The server is nbkube's (`nbkube.controlplane.dns`), on loopback, its zone filled with N Services
(ClusterIP ones and headless ones with 3 endpoints each) the way the informers fill it. The client
is another process (as pods are), sending UDP queries with a window of W in flight and timing each
from send to answer. Runs against the same server, same client: each Service name once right after
a zone change (uncached: dnslib parses and builds every answer), then the names cycled again and
again (answers cached until the zone changes, as pods ask the same names over and over), and one
static name asked again and again (the baseline: the cheapest answer this server gives). The ratios
say what answering real Service names costs over the server's floor. Loopback only; bounded by
count and time.

    python benchmarks/dns.py [--services 5000] [--count 20000] [--seconds 5] [--window 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from common import Row, pct_label  # noqa: E402

from nbkube.controlplane.dns.server import DNSServer  # noqa: E402
from nbkube.controlplane.dns.zone import Zone  # noqa: E402

CLIENT = r"""
import json, socket, sys, time
from dnslib import DNSRecord
host, port, count, seconds, window = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
names = json.loads(sys.stdin.read())
packets = []
for name in names:
    packets.append(DNSRecord.question(name, "A").pack())
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect((host, port)); s.settimeout(2.0)
sent_at = {}; lat = []; nxt = 0; t0 = time.perf_counter(); errors = 0
def send():
    global nxt
    qid = nxt % 65536; p = qid.to_bytes(2, "big") + packets[nxt % len(packets)][2:]
    sent_at[qid] = time.perf_counter(); s.send(p); nxt += 1
while nxt < min(window, count): send()
while lat or nxt:
    if len(lat) + errors >= count or time.perf_counter() - t0 > seconds: break
    try:
        data = s.recv(4096)
    except socket.timeout:
        errors += len(sent_at); sent_at.clear()
        if nxt < count: send()
        continue
    qid = int.from_bytes(data[:2], "big"); rcode = data[3] & 0xF
    start = sent_at.pop(qid, None)
    if start is None: continue
    if rcode != 0 or int.from_bytes(data[6:8], "big") == 0: errors += 1  # every name has an answer
    else: lat.append(time.perf_counter() - start)
    if nxt < count and time.perf_counter() - t0 < seconds: send()
elapsed = time.perf_counter() - t0
print(json.dumps({"rate": len(lat) / elapsed, "lat": lat, "errors": errors}))
"""


def build_zone(services: int) -> Zone:
    zone = Zone("cluster.local")
    ports = [{"name": "http", "port": 8000, "protocol": "TCP"}]
    zone.update_service("default/static", {"metadata": {"name": "static", "namespace": "default"},
                                           "spec": {"clusterIP": "10.96.0.99", "ports": ports}}, [])  # fmt: skip
    for i in range(services):
        name = f"svc-{i}"
        headless = i % 10 == 0
        ip = "None" if headless else f"10.{96 + (i >> 16) % 16}.{(i >> 8) & 255}.{i & 255}"
        svc = {"metadata": {"name": name, "namespace": "default"}, "spec": {"clusterIP": ip, "ports": ports}}
        slices = []
        if headless:
            eps = [{"addresses": [f"10.244.{j}.{i % 250 + 2}"], "hostname": f"{name}-{j}",
                    "conditions": {"ready": True}} for j in range(3)]  # fmt: skip
            slices = [{"metadata": {"name": f"{name}-x", "namespace": "default"}, "addressType": "IPv4",
                       "endpoints": eps, "ports": ports}]  # fmt: skip
        zone.update_service(f"default/{name}", svc, slices)
    return zone


def _client(server: DNSServer, names: list[str], count: int, seconds: float, window: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CLIENT, server.host, str(server.port), str(count), str(seconds), str(window)],
        input=json.dumps(names),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    result: dict = json.loads(out.stdout)
    return result


def _p99(lat: list[float]) -> float:
    ordered = sorted(lat)
    return ordered[max(0, -(-99 * len(ordered) // 100) - 1)] * 1000.0


def measure(args: argparse.Namespace) -> list[Row]:
    zone = build_zone(args.services)
    server = DNSServer(zone, "127.0.0.1", 0, upstreams=[])
    server.start()
    names = [f"svc-{i}.default.svc.cluster.local" for i in range(args.services)]
    static_name = ["static.default.svc.cluster.local"]
    try:
        # cold: each Service name once, right after a zone change (no cached answer)
        zone.update_service("default/bump", None, [])
        cold = _client(server, names, len(names), args.seconds, args.window)
        # warm: the same names again and again, as pods ask them (answers cached until a change)
        warm = _client(server, names, args.count, args.seconds, args.window)
        static = _client(server, static_name, args.count, args.seconds, args.window)
    finally:
        server.stop()
    if cold["errors"] or warm["errors"] or static["errors"]:
        raise RuntimeError(f"DNS benchmark: {cold['errors']}/{warm['errors']}/{static['errors']} queries failed")
    n_cold, n_warm, n_static = len(cold["lat"]), len(warm["lat"]), len(static["lat"])
    note = f"{args.services} Services (1 in 10 headless), UDP, window {args.window}, loopback"
    base = "same server, one static record"
    p99 = pct_label(99, n_static)
    return [
        Row(f"cluster DNS, A queries cycling over {args.services} Service names", warm["rate"], "queries/s",
            base, static["rate"], "same-run", samples=n_warm, note=note),  # fmt: skip
        Row(f"cluster DNS, {pct_label(99, n_warm)} latency, Service names", _p99(warm["lat"]), "ms",
            f"{base} ({p99})", _p99(static["lat"]), "same-run", samples=n_warm, note=note),  # fmt: skip
        Row("cluster DNS, first answer per name after a change (uncached)", cold["rate"], "queries/s",
            base, static["rate"], "same-run", samples=n_cold, note=note),  # fmt: skip
        Row(f"cluster DNS, {pct_label(99, n_cold)} latency, uncached Service names", _p99(cold["lat"]), "ms",
            f"{base} ({p99})", _p99(static["lat"]), "same-run", samples=n_cold, note=note),  # fmt: skip
    ]


def rows(quick: bool = False) -> list[Row]:
    args = argparse.Namespace(
        services=500 if quick else 5000, count=3000 if quick else 20000, seconds=2.0 if quick else 5.0, window=16
    )
    return measure(args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=5000)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    result = rows(quick=True) if args.quick else measure(args)
    for row in result:
        base = row.baseline_value if row.baseline_value is not None else float("nan")
        print(f"{row.name}: {row.value:,.2f} {row.unit}  vs {row.baseline}: {base:,.2f}  ratio {row.ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
