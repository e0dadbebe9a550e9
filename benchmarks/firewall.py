"""Benchmark: a full NetworkPolicy firewall sync against a hand-written iptables-restore (root).

One node with 1,000 pods in 10 namespaces under 100 policies (10 a namespace: a default deny, and
nine that open a tier's ports to some roles of the namespace, to a labelled other namespace and to
an address block with an except; three of them also restrict egress). Measured in one run, each
into its own scratch network namespace (`nbk-bench-fw-ours`, `nbk-bench-fw-hand`, deleted at the
end), median of `--repeat` runs:
- ours: everything a firewall runner does for its first sync: `policy.compute` over the objects,
  `IptablesFirewall.sync` (rendering, the br_netfilter sysctl, the adoption scan, one
  iptables-restore with the jump) from an empty namespace;
- baseline: `iptables-restore --noflush` of exactly the ruleset ours wrote (its text prepared
  beforehand, started in the namespace the same way), so the ratio is what nbkube adds on top of
  the kernel's own work. Target <= 1.5x.

Run: `sudo python benchmarks/firewall.py [--pods 1000] [--policies 100] [--repeat 5]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from common import Row, require_root  # noqa: E402

from nbkube.node.firewall.iptables import IptablesFirewall  # noqa: E402
from nbkube.node.firewall.policy import compute  # noqa: E402
from nbkube.node.firewall.render import render  # noqa: E402
from nbkube.node.proxy.iptables import restore_text, run_iptables  # noqa: E402

NAMESPACES = 10


def objects(
    pods: int, policies: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    nss = [{"metadata": {"name": f"ns{k}", "labels": {"team": f"t{k % 3}"}}} for k in range(NAMESPACES)]
    pod_objs = []
    for i in range(pods):
        labels = {"tier": f"tier{i % 10}", "role": f"r{i % 7}"}
        pod_objs.append({
            "metadata": {"name": f"p{i}", "namespace": f"ns{i % NAMESPACES}", "labels": labels},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 80}]}]},
            "status": {"phase": "Running", "podIP": f"10.244.{i // 250}.{i % 250 + 2}"},
        })  # fmt: skip
    pols = []
    for j in range(policies):
        ns, k = f"ns{j % NAMESPACES}", j // NAMESPACES
        if k == 0:
            spec: dict[str, Any] = {"podSelector": {}, "policyTypes": ["Ingress"]}
        else:
            spec = {
                "podSelector": {"matchLabels": {"tier": f"tier{k}"}},
                "ingress": [
                    {"from": [{"podSelector": {"matchLabels": {"role": f"r{k % 7}"}}},
                              {"podSelector": {"matchLabels": {"role": f"r{(k + 1) % 7}"}}}],
                     "ports": [{"port": 8000 + k}, {"port": "http"}]},
                    {"from": [{"namespaceSelector": {"matchLabels": {"team": f"t{k % 3}"}},
                               "podSelector": {"matchLabels": {"tier": "tier0"}}}]},
                    {"from": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": [f"192.168.{k}.0/24"]}}],
                     "ports": [{"port": 9000, "endPort": 9100}]},
                ],
            }  # fmt: skip
            if k <= 3:
                spec["egress"] = [{"to": [{"podSelector": {}}]}, {"ports": [{"port": 53, "protocol": "UDP"}]}]
        pols.append({"metadata": {"name": f"pol{j}", "namespace": ns}, "spec": spec})
    return pod_objs, nss, pols


def netns(name: str, *, create: bool) -> None:
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    if create:
        subprocess.run(["ip", "netns", "add", name], check=True)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    pods, nss, pols = objects(args.pods, args.policies)
    table = compute(pods, nss, pols, "n1")
    text = restore_text(render(table))  # the same ruleset, as one restore's input
    lines = text.count("\n-A ")
    chains = text.count("\n:")
    ours_ns, hand_ns = "nbk-bench-fw-ours", "nbk-bench-fw-hand"
    ours_ms, hand_ms, compute_ms = [], [], []
    try:
        for _ in range(args.repeat):
            netns(hand_ns, create=True)
            t0 = time.perf_counter()
            run_iptables(hand_ns, ["iptables-restore", "-w", "--noflush"], input=text)
            hand_ms.append((time.perf_counter() - t0) * 1000)
            netns(ours_ns, create=True)
            fw = IptablesFirewall(ours_ns)
            t0 = time.perf_counter()
            got = compute(pods, nss, pols, "n1")
            t1 = time.perf_counter()
            fw.sync(got)
            ours_ms.append((time.perf_counter() - t0) * 1000)
            compute_ms.append((t1 - t0) * 1000)
        saved = run_iptables(ours_ns, ["iptables-save", "-t", "filter"])
        have = sum(1 for line in saved.splitlines() if line.startswith("-A NBK-FW-"))
        assert have == lines, f"{have} rules in the kernel, {lines} rendered"
        fw.cleanup()
        left = run_iptables(ours_ns, ["iptables-save", "-t", "filter"])
        assert "NBK-FW-" not in left, "cleanup left rules behind"
    finally:
        netns(hand_ns, create=False)
        netns(ours_ns, create=False)
    isolated = sum(1 for fw_ in table.values() if fw_.ingress is not None)
    return {"ours_ms": ours_ms, "hand_ms": hand_ms, "compute_ms": compute_ms, "isolated": isolated,
            "chains": chains, "lines": lines}  # fmt: skip


def rows(quick: bool = False) -> list[Row]:
    require_root()
    args = argparse.Namespace(pods=200 if quick else 1000, policies=20 if quick else 100, repeat=2 if quick else 5)
    m = measure(args)
    return [Row(f"NetworkPolicy firewall full sync, {args.pods:,} pods x {args.policies} policies, median",
                statistics.median(m["ours_ms"]), "ms", f"iptables-restore of the same {m['lines']:,} rules",
                statistics.median(m["hand_ms"]), "same-run", samples=args.repeat,
                note=f"of which policy.compute {statistics.median(m['compute_ms']):.1f} ms")]  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--policies", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    m = measure(args)
    ours_ms, hand_ms, compute_ms = m["ours_ms"], m["hand_ms"], m["compute_ms"]
    isolated, chains, lines = m["isolated"], m["chains"], m["lines"]
    hand, ours = statistics.median(hand_ms), statistics.median(ours_ms)
    print(
        f"NetworkPolicy firewall, {args.pods} pods x {args.policies} policies: {isolated} isolated pods,"
        f" {chains} chains, {lines} rules; {os.cpu_count()} cores, median of {args.repeat}"
    )
    print(f"{'measure':<46}{'ms':>9}{'baseline ms':>13}{'ratio':>7}{'target':>9}")
    print(
        f"{'full sync (compute + render + restore)':<46}{ours:>9.1f}{hand:>13.1f}{ours / hand:>6.2f}x{'<= 1.5x':>9}"
    )
    print(f"{'  of which policy.compute':<46}{statistics.median(compute_ms):>9.1f}")
    print(
        f"(runs, ours: {', '.join(f'{v:.0f}' for v in ours_ms)}; hand: {', '.join(f'{v:.0f}' for v in hand_ms)} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
