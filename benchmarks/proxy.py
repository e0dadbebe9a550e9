"""Benchmark: the iptables proxy's sync against a hand-written iptables-restore (root).

Measured in one run, each into its own scratch network namespace (`nbk-bench-*`, deleted at the end):
- full sync of 1,000 services x 3 endpoints (NodePort on each): `IptablesProxy.sync` from an empty
  namespace (rendering, the adoption scan, the restore, the jump rules) beside `iptables-restore
  --noflush` of the same chain structure built by plain string code in this file. Target <= 1.5x.
- endpoint change to rules: one service's endpoints change, then `compute_rules` over all 1,000
  Services/Endpoints objects and `sync`, until iptables-restore has committed. Target p99 <= 100 ms.

Run: `sudo python benchmarks/proxy.py [--services 1000] [--changes 50] [--repeat 3]`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from nbkube.node.proxy.iptables import IptablesProxy
from nbkube.node.proxy.rules import compute_rules


def objects(n: int, endpoints: int, generation: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    services, eps = [], []
    for i in range(n):
        name = f"svc{i}"
        services.append({
            "kind": "Service", "metadata": {"name": name, "namespace": "bench"},
            "spec": {"clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
                     "ports": [{"port": 8000, "protocol": "TCP", "nodePort": 30000 + i}]},
        })  # fmt: skip
        eps.append({
            "kind": "Endpoints", "metadata": {"name": name, "namespace": "bench"},
            "subsets": [{"addresses": [{"ip": f"10.244.{1 + (i * endpoints + k) % 200}.{2 + (i + generation) % 250}"}
                                       for k in range(endpoints)],
                         "ports": [{"port": 80, "protocol": "TCP"}]}],
        })  # fmt: skip
    return services, eps


def hand_written(n: int, endpoints: int) -> str:
    """The same chain structure as the proxy writes, by straightforward string code."""

    def h(*parts: object) -> str:
        return hashlib.md5(repr(parts).encode()).hexdigest()[:16].upper()

    nat_decl = [
        ":NBK-SERVICES - [0:0]",
        ":NBK-NODEPORTS - [0:0]",
        ":NBK-MARK-MASQ - [0:0]",
        ":NBK-POSTROUTING - [0:0]",
    ]
    nat = [
        "-A NBK-MARK-MASQ -j MARK --or-mark 0x4000",
        "-A NBK-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A NBK-POSTROUTING -j MARK --xor-mark 0x4000",
        '-A NBK-POSTROUTING -m comment --comment "masq" -j MASQUERADE',
    ]
    for i in range(n):
        cip = f"10.96.{i // 250}.{i % 250 + 1}"
        svc = f"NBK-SVC-{h(i)}"
        nat_decl.append(f":{svc} - [0:0]")
        nat.append(
            f'-A NBK-SERVICES -m comment --comment "bench/svc{i} cluster IP" -d {cip}/32 -p tcp --dport 8000 -j {svc}'
        )
        nat.append(f"-A NBK-NODEPORTS -p tcp --dport {30000 + i} -j NBK-MARK-MASQ")
        nat.append(f"-A NBK-NODEPORTS -p tcp --dport {30000 + i} -j {svc}")
        nat.append(f"-A {svc} ! -s 10.244.0.0/16 -d {cip}/32 -p tcp --dport 8000 -j NBK-MARK-MASQ")
        for k in range(endpoints):
            ip = f"10.244.{1 + (i * endpoints + k) % 200}.{2 + i % 250}"
            sep = f"NBK-SEP-{h(i, k)}"
            nat_decl.append(f":{sep} - [0:0]")
            stat = (
                f"-m statistic --mode random --probability {1 / (endpoints - k):.10f} "
                if k < endpoints - 1
                else ""
            )
            nat.append(f"-A {svc} {stat}-j {sep}")
            nat.append(f"-A {sep} -s {ip}/32 -j NBK-MARK-MASQ")
            nat.append(f"-A {sep} -p tcp -j DNAT --to-destination {ip}:80")
    nat.append("-A NBK-SERVICES -d 10.240.0.2/32 -j NBK-NODEPORTS")
    filt = [
        ":NBK-SERVICES - [0:0]",
        ":NBK-FORWARD - [0:0]",
        "-A NBK-FORWARD -m mark --mark 0x4000/0x4000 -j ACCEPT",
        "-A NBK-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ]
    return "\n".join(["*filter", *filt, "COMMIT", "*nat", *nat_decl, *nat, "COMMIT", ""])


def netns(name: str, *, create: bool) -> None:
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    if create:
        subprocess.run(["ip", "netns", "add", name], check=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--endpoints", type=int, default=3)
    ap.add_argument("--changes", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n, e = args.services, args.endpoints
    hand_ns, ours_ns = "nbk-bench-hand", "nbk-bench-ours"
    services, eps = objects(n, e)
    rules = compute_rules(services, eps)
    text = hand_written(n, e)
    hand_ms, ours_ms = [], []
    try:
        for _ in range(args.repeat):
            netns(hand_ns, create=True)
            t0 = time.perf_counter()
            subprocess.run(["ip", "netns", "exec", hand_ns, "iptables-restore", "-w", "--noflush"],
                           input=text, text=True, check=True)  # fmt: skip
            hand_ms.append((time.perf_counter() - t0) * 1000)
            netns(ours_ns, create=True)
            proxy = IptablesProxy(ours_ns, ["10.240.0.2"])
            t0 = time.perf_counter()
            proxy.sync(rules)
            ours_ms.append((time.perf_counter() - t0) * 1000)
        rule_lines = text.count("\n-A ") + text.startswith("-A")
        # Endpoint changes: one service at a time gets a new endpoint set; all objects recomputed.
        latencies, sync_only = [], []
        for c in range(args.changes):
            i = (c * 37) % n
            _, changed = objects(1, e, generation=c + 1)
            changed[0]["metadata"]["name"] = f"svc{i}"
            eps[i] = changed[0]
            t0 = time.perf_counter()
            new_rules = compute_rules(services, eps)
            t1 = time.perf_counter()
            proxy.sync(new_rules)
            t2 = time.perf_counter()
            latencies.append((t2 - t0) * 1000)
            sync_only.append((t2 - t1) * 1000)
        check = subprocess.run(["ip", "netns", "exec", ours_ns, "iptables-save", "-t", "nat"],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert check.count(":NBK-SEP-") == n * e, "rules in the kernel do not match the last sync"
    finally:
        netns(hand_ns, create=False)
        netns(ours_ns, create=False)

    hand, ours = statistics.median(hand_ms), statistics.median(ours_ms)
    p50, p99 = pct(latencies, 0.5), pct(latencies, 0.99)
    print(f"iptables proxy, {n} services x {e} endpoints ({rule_lines} rules), {args.repeat} runs, median")
    print(f"{'measure':<44}{'ms':>10}{'baseline ms':>14}{'ratio':>8}{'target':>10}")
    print(
        f"{'full sync vs hand-written iptables-restore':<44}{ours:>10.1f}{hand:>14.1f}{ours / hand:>8.2f}{'<= 1.5x':>10}"
    )
    print(f"{'endpoint change -> rules, p50':<44}{p50:>10.1f}{'':>14}{'':>8}{'':>10}")
    print(f"{'endpoint change -> rules, p99':<44}{p99:>10.1f}{'':>14}{'':>8}{'<= 100':>10}")
    print(f"{'  of which proxy sync alone, p50':<44}{pct(sync_only, 0.5):>10.1f}")
    print(f"{'  of which proxy sync alone, p99':<44}{pct(sync_only, 0.99):>10.1f}")
    print(
        f"(restores run by the proxy: {proxy.restores}; changes: {args.changes}; load average {os.getloadavg()[0]:.1f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
