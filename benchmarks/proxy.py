"""Benchmark: the iptables proxy's sync against a hand-written iptables-restore (root).

Measured in one run, each into its own scratch network namespace (`nbk-bench-*`, deleted at the end):
- full sync of 1,000 services x 3 endpoints (NodePort on each): `IptablesProxy.sync` from an empty
  namespace (rendering, the adoption scan, the restore, the jump rules) beside `iptables-restore
  --noflush` of the same chain structure built by plain string code in this file. Target <= 1.5x.
- endpoint change to rules: one service's Endpoints gets a new version (one endpoint replaced),
  then what the proxy's sync loop does: `RuleCache.refresh` of the changed service (looked up by
  key, as in the informer's cache) and `sync`, until iptables-restore has exited. Target p99 <= 100 ms. The baseline, interleaved change
  by change in the hand-written namespace, is the straightforward way to apply the same change:
  `iptables-restore --noflush` of that service's chains rewritten and the new endpoint's chain,
  started in the namespace exactly as the proxy starts its own (nbkube.node.netns: setns in the
  calling thread, no `ip netns exec`), its text prepared beforehand so only the restore is timed.
  Like the proxy, it defers deleting the replaced endpoint's chain: after the phase both delete
  what they left, the proxy by `compact()`, the baseline by one restore of `-X` lines, both timed.
- both, once on the box as it is and once under a bounded synthetic CPU load: `--load` busy-loop
  processes (default: one per core), started for that phase only and killed (by pid) at its end.
  Changes follow each other without a pause, so the proxy's fast path (new chains inserted in
  front, nothing deleted) is what is timed; after each phase `compact()` runs, as the proxy runner
  does after a quiet second, and its time is printed too.

Run: `sudo python benchmarks/proxy.py [--services 1000] [--changes 300] [--repeat 5] [--load N]`.
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

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from common import Row, pct_label, require_root  # noqa: E402

from nbkube.node.proxy.iptables import IptablesProxy, run_iptables  # noqa: E402
from nbkube.node.proxy.rules import RuleCache  # noqa: E402


def endpoint_ip(i: int, k: int, endpoints: int, generation: int = 0) -> str:
    """Endpoint k of service i; a later generation replaces endpoint 0 only (a pod replaced)."""
    gen = generation if k == 0 else 0
    return f"10.244.{1 + (i * endpoints + k) % 200}.{2 + (i + gen) % 250}"


def endpoints_object(i: int, endpoints: int, generation: int = 0, rv: int = 1) -> dict[str, Any]:
    return {
        "kind": "Endpoints", "metadata": {"name": f"svc{i}", "namespace": "bench", "resourceVersion": str(rv)},
        "subsets": [{"addresses": [{"ip": endpoint_ip(i, k, endpoints, generation)} for k in range(endpoints)],
                     "ports": [{"port": 80, "protocol": "TCP"}]}],
    }  # fmt: skip


def objects(n: int, endpoints: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # resourceVersions as the store sets them: the proxy's cache keys on them.
    services, eps = [], []
    for i in range(n):
        name = f"svc{i}"
        services.append({
            "kind": "Service", "metadata": {"name": name, "namespace": "bench", "resourceVersion": str(i + 1)},
            "spec": {"clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
                     "ports": [{"port": 8000, "protocol": "TCP", "nodePort": 30000 + i}]},
        })  # fmt: skip
        eps.append(endpoints_object(i, endpoints, rv=n + i + 1))
    return services, eps


def h(*parts: object) -> str:
    return hashlib.md5(repr(parts).encode()).hexdigest()[:16].upper()


def hand_service(i: int, endpoints: int, generation: int = 0) -> tuple[list[str], list[str]]:
    """Service i's own chains, hand-written: (declarations, rules)."""
    cip = f"10.96.{i // 250}.{i % 250 + 1}"
    svc = f"NBK-SVC-{h(i)}"
    decl = [f":{svc} - [0:0]"]
    rules = [f"-A {svc} ! -s 10.244.0.0/16 -d {cip}/32 -p tcp --dport 8000 -j NBK-MARK-MASQ"]
    for k in range(endpoints):
        ip = endpoint_ip(i, k, endpoints, generation)
        sep = f"NBK-SEP-{h(i, ip)}"
        decl.append(f":{sep} - [0:0]")
        stat = (
            f"-m statistic --mode random --probability {1 / (endpoints - k):.10f} "
            if k < endpoints - 1
            else ""
        )
        rules.append(f"-A {svc} {stat}-j {sep}")
        rules.append(f"-A {sep} -s {ip}/32 -j NBK-MARK-MASQ")
        rules.append(f"-A {sep} -p tcp -j DNAT --to-destination {ip}:80")
    return decl, rules


def hand_change(i: int, endpoints: int, generation: int) -> tuple[str, str]:
    """The hand-written restore for one endpoint change (the service's chains rewritten, the new
    endpoint's chain added), and the chain it leaves stale (deleted later, as the proxy does)."""
    decl, rules = hand_service(i, endpoints, generation)
    stale = f"NBK-SEP-{h(i, endpoint_ip(i, 0, endpoints, generation - 1))}"
    return "\n".join(["*nat", *decl, *rules, "COMMIT", ""]), stale


def hand_written(n: int, endpoints: int) -> str:
    """The same chain structure as the proxy writes, by straightforward string code."""

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
        nat.append(
            f'-A NBK-SERVICES -m comment --comment "bench/svc{i} cluster IP" -d {cip}/32 -p tcp --dport 8000 -j {svc}'
        )
        nat.append(f"-A NBK-NODEPORTS -p tcp --dport {30000 + i} -j NBK-MARK-MASQ")
        nat.append(f"-A NBK-NODEPORTS -p tcp --dport {30000 + i} -j {svc}")
        decl, rules = hand_service(i, endpoints)
        nat_decl += decl
        nat += rules
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


def restore(ns: str, text: str) -> None:
    """iptables-restore in `ns`, started the way the proxy starts its own (setns, not ip netns exec)."""
    run_iptables(ns, ["iptables-restore", "-w", "--noflush"], input=text)


class Phase:
    """Endpoint changes applied alternately by the proxy and by hand, under one machine state."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ours: list[float] = []
        self.compute: list[float] = []
        self.hand: list[float] = []
        self.load = 0.0
        self.compact = 0.0
        self.hand_compact = 0.0


def changes(phase: Phase, count: int, first: int, n: int, e: int, state: dict[str, Any]) -> None:
    proxy: IptablesProxy = state["proxy"]
    cache: RuleCache = state["cache"]
    eps, gens = state["eps"], state["gens"]
    svc_by_key = {f"bench/{s['metadata']['name']}": s for s in state["services"]}
    ep_by_key = {f"bench/{ep['metadata']['name']}": ep for ep in eps}
    for c in range(first, first + count):
        i = (c * 37) % n
        gens[i] += 1
        state["rv"] += 1
        eps[i] = ep_by_key[f"bench/svc{i}"] = endpoints_object(i, e, gens[i], state["rv"])
        text, stale = hand_change(i, e, gens[i])
        state["stale"].append(stale)
        t0 = time.perf_counter()
        rules = cache.refresh([f"bench/svc{i}"], svc_by_key.get, ep_by_key.get)
        t1 = time.perf_counter()
        proxy.sync(rules)
        t2 = time.perf_counter()
        restore(state["hand_ns"], text)
        t3 = time.perf_counter()
        phase.ours.append((t2 - t0) * 1000)
        phase.compute.append((t1 - t0) * 1000)
        phase.hand.append((t3 - t2) * 1000)
    phase.load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proxy.compact()
    phase.compact = (time.perf_counter() - t0) * 1000
    drop = state["stale"]
    state["stale"] = []
    t0 = time.perf_counter()
    # declared (flushed) then deleted: a chain must be empty to go
    flush_then_delete = [*(f":{c} - [0:0]" for c in drop), *(f"-X {c}" for c in drop)]
    restore(state["hand_ns"], "\n".join(["*nat", *flush_then_delete, "COMMIT", ""]))
    phase.hand_compact = (time.perf_counter() - t0) * 1000


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Both full syncs (`repeat` times each) and the change phases; the raw timings."""
    n, e = args.services, args.endpoints
    hand_ns, ours_ns = "nbk-bench-hand", "nbk-bench-ours"
    services, eps = objects(n, e)
    text = hand_written(n, e)
    hand_ms, ours_ms = [], []
    phases = [Phase("as the box is")] + ([Phase(f"{args.load} busy loops")] if args.load else [])
    busy: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(args.repeat):
            netns(hand_ns, create=True)
            t0 = time.perf_counter()
            restore(hand_ns, text)
            hand_ms.append((time.perf_counter() - t0) * 1000)
            netns(ours_ns, create=True)
            proxy = IptablesProxy(ours_ns, ["10.240.0.2"])
            cache = RuleCache()
            t0 = time.perf_counter()
            proxy.sync(cache.compute(services, eps))
            ours_ms.append((time.perf_counter() - t0) * 1000)
        rule_lines = text.count("\n-A ") + text.startswith("-A")
        state: dict[str, Any] = {"proxy": proxy, "cache": cache, "services": services, "eps": eps,
                                 "gens": [0] * n, "rv": 2 * n + 1, "hand_ns": hand_ns, "stale": []}  # fmt: skip
        for p, phase in enumerate(phases):
            if p == 1:
                # Bounded: these processes live for this phase only, and are killed by pid below.
                busy = [
                    subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)
                ]
                time.sleep(0.5)
            changes(phase, args.changes, p * args.changes, n, e, state)
        for proc in busy:
            proc.kill()
            proc.wait()
        busy = []
        for ns in (ours_ns, hand_ns):
            check = run_iptables(ns, ["iptables-save", "-t", "nat"])
            chains = {line.split()[0] for line in check.splitlines() if line.startswith(":NBK-SEP-")}
            assert len(chains) == n * e, f"{ns}: {len(chains)} endpoint chains, not {n * e}"
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
        netns(hand_ns, create=False)
        netns(ours_ns, create=False)
    return {"hand_ms": hand_ms, "ours_ms": ours_ms, "phases": phases, "rule_lines": rule_lines,
            "restores": proxy.restores}  # fmt: skip


def rows(quick: bool = False) -> list[Row]:
    require_root()
    args = argparse.Namespace(services=200 if quick else 1000, endpoints=3, changes=30 if quick else 300,
                              repeat=2 if quick else 5, load=os.cpu_count() or 2)  # fmt: skip
    m = measure(args)
    scale = f"{args.services:,} services x {args.endpoints}"
    out = [Row(f"iptables proxy full sync, {scale}, median of {args.repeat}", statistics.median(m["ours_ms"]), "ms",
               "hand-written iptables-restore of the same chains, same namespace entry",
               statistics.median(m["hand_ms"]), "same-run", samples=args.repeat)]  # fmt: skip
    for phase in m["phases"]:
        k = len(phase.ours)
        for q in (50, 99):
            out.append(Row(f"endpoint change -> rules {pct_label(q, k)}, {phase.name}", pct(phase.ours, q / 100),
                           "ms", "hand-written restore of the same change, interleaved", pct(phase.hand, q / 100),
                           "same-run", samples=k, note=f"load average {phase.load:.1f}"))  # fmt: skip
        out.append(Row(f"deferred deletion after the changes, {phase.name}", phase.compact, "ms",
                       "hand-written restore deleting the stale chains", phase.hand_compact, "same-run",
                       samples=1, note="proxy.compact(); off the change path"))  # fmt: skip
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--endpoints", type=int, default=3)
    ap.add_argument("--changes", type=int, default=300, help="endpoint changes per phase")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--load", type=int, default=os.cpu_count() or 2, help="busy-loop processes (0: none)")
    args = ap.parse_args()
    n, e = args.services, args.endpoints
    m = measure(args)
    hand_ms, ours_ms, phases, rule_lines = m["hand_ms"], m["ours_ms"], m["phases"], m["rule_lines"]
    hand, ours = statistics.median(hand_ms), statistics.median(ours_ms)
    print(f"iptables proxy, {n} services x {e} endpoints ({rule_lines} rules), {os.cpu_count()} cores")
    print(f"{'measure':<52}{'ms':>9}{'baseline ms':>13}{'ratio':>7}{'target':>9}")
    print(
        f"{'full sync vs hand-written iptables-restore, median':<52}{ours:>9.1f}{hand:>13.1f}"
        f"{ours / hand:>7.2f}{'<= 1.5x':>9}"
    )
    for phase in phases:
        print(
            f"endpoint change -> rules, {phase.name} ({len(phase.ours)} changes, load average {phase.load:.1f}):"
        )
        for q in (0.5, 0.99):
            ours_q, hand_q = pct(phase.ours, q), pct(phase.hand, q)
            target = "<= 100" if q == 0.99 else ""
            print(
                f"{f'  p{round(q * 100)}':<52}{ours_q:>9.1f}{hand_q:>13.1f}{ours_q / hand_q:>7.2f}{target:>9}"
            )
        print(f"{'  of which RuleCache.refresh, p50 / p99':<52}{pct(phase.compute, 0.5):>9.1f}"
              f"{pct(phase.compute, 0.99):>13.1f}")  # fmt: skip
        print(f"{'  deferred deletion after the phase (compact / hand)':<52}{phase.compact:>9.1f}"
              f"{phase.hand_compact:>13.1f}")  # fmt: skip
    print(f"(restores run by the proxy: {m['restores']}; baseline: hand-written restore of the same change)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
