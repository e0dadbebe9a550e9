"""The iptables service proxy (kube-proxy's iptables mode) for nodes that have their own netns.

Called by the node agent (or whatever drives the proxy on a node) with the table that
`rules.compute_rules` builds from Services and Endpoints: `IptablesProxy.sync(rules)` makes the
kernel forward every ClusterIP:port and NodePort to the ready backends, spread evenly with
`statistic --mode random` as kube-proxy does, sticky per client with `recent` for
`sessionAffinity: ClientIP`. Packets that arrive on a NodePort or come from outside the cluster
CIDR are marked and masqueraded, so replies come back through the node that DNATed them; a service
without endpoints is REJECTed (in the filter table, where REJECT is allowed).

Why it looks like this:
- one `iptables-restore --noflush` per sync, never one `iptables` call per rule: a restore is one
  kernel transaction, and the time per sync stays flat in the number of rules written;
- our chains all start with `NBK-` (kube-proxy's `KUBE-`, renamed) so a real kube-proxy, Docker
  and the host's own rules are never touched; only our chains are declared, flushed and refilled,
  and the jumps into them from the built-in chains are added once, each checked with `iptables -C`;
- `render_tables` / `render` are pure (no root needed to test them); `sync` rewrites only chains
  whose content changed since the last sync, and skips the restore when nothing did, so an endpoint
  change costs a restore of two or three chains even with thousands of services.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import subprocess
from collections.abc import Iterable, Sequence

from nbkube.node.proxy.rules import ServicePortRule

log = logging.getLogger(__name__)

__all__ = ["IptablesError", "IptablesProxy", "Tables", "render", "render_tables", "restore_text"]

# table -> chain -> rule lines ("-A CHAIN ..."), in order; only our chains.
Tables = dict[str, dict[str, list[str]]]

SERVICES = "NBK-SERVICES"
NODEPORTS = "NBK-NODEPORTS"
MARK_MASQ = "NBK-MARK-MASQ"
POSTROUTING = "NBK-POSTROUTING"
FORWARD = "NBK-FORWARD"
MASQ_BIT = "0x4000"
MASQ_MARK = f"{MASQ_BIT}/{MASQ_BIT}"

# (table, built-in chain, rule spec): the only rules we ever put outside our own chains.
JUMPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("nat", "PREROUTING", ("-m", "comment", "--comment", "nbkube service portals", "-j", SERVICES)),
    ("nat", "OUTPUT", ("-m", "comment", "--comment", "nbkube service portals", "-j", SERVICES)),
    ("nat", "POSTROUTING", ("-m", "comment", "--comment", "nbkube postrouting rules", "-j", POSTROUTING)),
    ("filter", "INPUT", ("-m", "conntrack", "--ctstate", "NEW", "-j", SERVICES)),
    ("filter", "FORWARD", ("-m", "conntrack", "--ctstate", "NEW", "-j", SERVICES)),
    ("filter", "OUTPUT", ("-m", "conntrack", "--ctstate", "NEW", "-j", SERVICES)),
    ("filter", "FORWARD", ("-m", "comment", "--comment", "nbkube forwarding rules", "-j", FORWARD)),
)


class IptablesError(RuntimeError):
    """iptables(-restore) failed; the message holds the command, its stderr and the netns."""


def _hash(*parts: str) -> str:
    # As kube-proxy: a stable, short, chain-name-safe digest; 16 base32 characters keep
    # "NBK-SVC-" + hash well under iptables' 28-character chain-name limit.
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return base64.b32encode(digest).decode()[:16]


def svc_chain(rule: ServicePortRule) -> str:
    return f"NBK-SVC-{_hash(rule.id, rule.protocol)}"


def sep_chain(rule: ServicePortRule, ip: str, port: int) -> str:
    return f"NBK-SEP-{_hash(rule.id, rule.protocol, ip, str(port))}"


def _comment(text: str) -> str:
    return f'-m comment --comment "{text}"'


def render_tables(
    rules: Iterable[ServicePortRule], *, cluster_cidr: str = "10.244.0.0/16", node_ips: Sequence[str] = ()
) -> Tables:
    """Our chains, table by table, for this proxy table. Pure."""
    nat: dict[str, list[str]] = {SERVICES: [], NODEPORTS: [], MARK_MASQ: [], POSTROUTING: []}
    filt: dict[str, list[str]] = {SERVICES: [], FORWARD: []}
    nat[MARK_MASQ].append(f"-A {MARK_MASQ} -j MARK --or-mark {MASQ_BIT}")
    nat[POSTROUTING] += [
        f"-A {POSTROUTING} -m mark ! --mark {MASQ_MARK} -j RETURN",
        f"-A {POSTROUTING} -j MARK --xor-mark {MASQ_BIT}",
        f"-A {POSTROUTING} {_comment('nbkube service traffic requiring SNAT')} -j MASQUERADE",
    ]
    filt[FORWARD] += [
        f"-A {FORWARD} -m mark --mark {MASQ_MARK} -j ACCEPT",
        f"-A {FORWARD} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ]
    for rule in rules:
        proto = rule.protocol.lower()
        match = f"-d {rule.cluster_ip}/32 -p {proto} --dport {rule.port}"
        comment = _comment(f"{rule.id} cluster IP")
        if not rule.backends:
            filt[SERVICES].append(f"-A {SERVICES} {comment} {match} -j REJECT")
            if rule.node_port:
                filt[SERVICES].append(
                    f"-A {SERVICES} {_comment(f'{rule.id} node port')} -m addrtype --dst-type LOCAL"
                    f" -p {proto} --dport {rule.node_port} -j REJECT"
                )
            continue
        svc = svc_chain(rule)
        nat[SERVICES].append(f"-A {SERVICES} {comment} {match} -j {svc}")
        if rule.node_port:
            np = f"-p {proto} --dport {rule.node_port}"
            nat[NODEPORTS] += [f"-A {NODEPORTS} {np} -j {MARK_MASQ}", f"-A {NODEPORTS} {np} -j {svc}"]
        body: list[str] = []
        if cluster_cidr:
            body.append(f"-A {svc} ! -s {cluster_cidr} {match} -j {MARK_MASQ}")
        seps = [(sep_chain(rule, b.ip, b.port), b.ip, b.port) for b in rule.backends]
        if rule.session_affinity:
            body += [
                f"-A {svc} -m recent --name {sep} --rcheck --seconds {rule.affinity_timeout} --reap -j {sep}"
                for sep, _, _ in seps
            ]
        n = len(seps)
        for i, (sep, _, _) in enumerate(seps):
            if i < n - 1:
                body.append(
                    f"-A {svc} -m statistic --mode random --probability {1.0 / (n - i):.10f} -j {sep}"
                )
            else:
                body.append(f"-A {svc} -j {sep}")
        nat[svc] = body
        for sep, ip, port in seps:
            recent = f" -m recent --name {sep} --set" if rule.session_affinity else ""
            nat[sep] = [
                f"-A {sep} -s {ip}/32 -j {MARK_MASQ}",
                f"-A {sep} -p {proto}{recent} -j DNAT --to-destination {ip}:{port}",
            ]
    # NodePorts last: the address-type test is the most expensive match in the chain.
    if node_ips:
        nat[SERVICES] += [f"-A {SERVICES} -d {ip}/32 -j {NODEPORTS}" for ip in node_ips]
    else:
        nat[SERVICES].append(f"-A {SERVICES} -m addrtype --dst-type LOCAL -j {NODEPORTS}")
    return {"filter": filt, "nat": nat}


def restore_text(new: Tables, old: Tables | None = None, existing: Iterable[tuple[str, str]] = ()) -> str:
    """iptables-restore input that turns `old` (what we last wrote) into `new`. Pure.

    Chains unchanged since `old` are left alone; chains in `old` or `existing` (found in the kernel)
    but not in `new` are flushed and deleted. With `old=None` every chain of `new` is written.
    """
    stale = {(t, c) for t, chains in (old or {}).items() for c in chains} | set(existing)
    out: list[str] = []
    for table in sorted(set(new) | {t for t, _ in stale}):
        chains = new.get(table, {})
        before = (old or {}).get(table, {})
        write = [c for c, lines in chains.items() if old is None or before.get(c) != lines]
        drop = sorted(c for t, c in stale if t == table and c not in chains)
        if not write and not drop:
            continue
        out.append(f"*{table}")
        out += [f":{c} - [0:0]" for c in write + drop]
        for c in write:
            out += chains[c]
        out += [f"-X {c}" for c in drop]
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


def render(
    rules: Iterable[ServicePortRule], *, cluster_cidr: str = "10.244.0.0/16", node_ips: Sequence[str] = ()
) -> str:
    """The whole content of our chains as iptables-restore input. Pure."""
    return restore_text(render_tables(rules, cluster_cidr=cluster_cidr, node_ips=node_ips))


class IptablesProxy:
    """Programs one network namespace's iptables (the host's when `netns` is None)."""

    def __init__(
        self, netns: str | None, node_ips: Sequence[str] = (), cluster_cidr: str = "10.244.0.0/16"
    ) -> None:
        self.netns = netns
        self.node_ips = tuple(node_ips)
        self.cluster_cidr = cluster_cidr
        self._applied: Tables | None = None
        self._last_text: str | None = None
        self._jumps_done = False
        self.restores = 0  # how many iptables-restore runs, for tests and benchmarks

    def _cmd(self, *args: str) -> list[str]:
        return (["ip", "netns", "exec", self.netns] if self.netns else []) + list(args)

    def _run(
        self, args: list[str], input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(args, input=input, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise IptablesError(f"{' '.join(args[:6])}: {exc}") from exc
        if check and proc.returncode != 0:
            where = f"netns {self.netns}" if self.netns else "host namespace"
            raise IptablesError(f"{' '.join(args)} in {where} failed: {proc.stderr.strip()}")
        return proc

    def existing_chains(self) -> set[tuple[str, str]]:
        """(table, chain) of every NBK- chain in the kernel now (ours, maybe from a previous run)."""
        found: set[tuple[str, str]] = set()
        for table in ("nat", "filter"):
            out = self._run(self._cmd("iptables-save", "-t", table)).stdout
            found |= {(table, line[1:].split()[0]) for line in out.splitlines() if line.startswith(":NBK-")}
        return found

    def sync(self, rules: Iterable[ServicePortRule]) -> bool:
        """Make the kernel match `rules`; False when nothing had changed (no restore run)."""
        tables = render_tables(rules, cluster_cidr=self.cluster_cidr, node_ips=self.node_ips)
        text = restore_text(tables)
        if text == self._last_text:
            return False
        # First sync of this object: chains left by an earlier run are adopted (rewritten or deleted).
        existing = self.existing_chains() if self._applied is None else set()
        delta = restore_text(tables, self._applied, existing)
        try:
            self._run(self._cmd("iptables-restore", "-w", "--noflush"), input=delta)
        except IptablesError:
            self._applied = self._last_text = None  # next sync writes everything again
            raise
        self.restores += 1
        self._applied, self._last_text = tables, text
        if not self._jumps_done:
            self._ensure_jumps()
        return True

    def _ensure_jumps(self) -> None:
        for table, chain, spec in JUMPS:
            if self._run(
                self._cmd("iptables", "-w", "-t", table, "-C", chain, *spec), check=False
            ).returncode:
                self._run(self._cmd("iptables", "-w", "-t", table, "-I", chain, "1", *spec))
        self._jumps_done = True

    def cleanup(self) -> None:
        """Remove our jumps and chains; nothing else is touched."""
        for table, chain, spec in JUMPS:
            for _ in range(10):  # bounded: one copy is normal, more only after crashes
                if self._run(
                    self._cmd("iptables", "-w", "-t", table, "-D", chain, *spec), check=False
                ).returncode:
                    break
        existing = self.existing_chains()
        if existing:
            self._run(
                self._cmd("iptables-restore", "-w", "--noflush"), input=restore_text({}, None, existing)
            )
        self._applied = self._last_text = None
        self._jumps_done = False
