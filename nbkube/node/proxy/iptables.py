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
  and the jumps into them from the built-in chains are added once (on the first sync, after one
  `iptables-save` shows which are missing, inside the same restore: an `iptables -C` per jump costs
  a full ruleset read each with the nft backend, 100+ ms at 13,000 rules);
- `render_tables` / `render` are pure (no root needed to test them); `sync` rewrites only chains
  whose content changed since the last sync, and skips the restore when nothing did, so an endpoint
  change costs a restore of two or three chains even with thousands of services; the rendering of
  each service port is memoised for the same reason.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nbkube.node.proxy.rules import ServicePortRule

__all__ = ["IptablesError", "IptablesProxy", "Tables", "render", "render_tables", "restore_text"]

# table -> chain -> rule lines ("-A CHAIN ..."), in order; only our chains.
Tables = dict[str, dict[str, Sequence[str]]]

SERVICES = "NBK-SERVICES"
NODEPORTS = "NBK-NODEPORTS"
MARK_MASQ = "NBK-MARK-MASQ"
POSTROUTING = "NBK-POSTROUTING"
FORWARD = "NBK-FORWARD"
MASQ_BIT = "0x4000"
MASQ_MARK = f"{MASQ_BIT}/{MASQ_BIT}"

# (table, built-in chain, rule spec): the only rules we ever put outside our own chains, written as
# iptables-save prints them, so that one look at iptables-save tells whether they are there.
JUMPS: tuple[tuple[str, str, str], ...] = (
    ("nat", "PREROUTING", f'-m comment --comment "nbkube service portals" -j {SERVICES}'),
    ("nat", "OUTPUT", f'-m comment --comment "nbkube service portals" -j {SERVICES}'),
    ("nat", "POSTROUTING", f'-m comment --comment "nbkube postrouting rules" -j {POSTROUTING}'),
    ("filter", "INPUT", f"-m conntrack --ctstate NEW -j {SERVICES}"),
    ("filter", "FORWARD", f"-m conntrack --ctstate NEW -j {SERVICES}"),
    ("filter", "OUTPUT", f"-m conntrack --ctstate NEW -j {SERVICES}"),
    ("filter", "FORWARD", f'-m comment --comment "nbkube forwarding rules" -j {FORWARD}'),
)


class IptablesError(RuntimeError):
    """iptables(-restore) failed; the message holds the command, its stderr and the netns."""


def _hash(*parts: str) -> str:
    # As kube-proxy: a stable, short, chain-name-safe digest; 16 base32 characters keep
    # "NBK-SVC-" + hash well under iptables' 28-character chain-name limit.
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return base64.b32encode(digest).decode()[:16]


def _is_proxy_chain(name: str) -> bool:
    """Whether the proxy owns chain `name`; other `NBK-` chains (the node network's FORWARD
    accepts) belong to someone else on the same host and are never adopted or deleted here."""
    return name in (SERVICES, NODEPORTS, MARK_MASQ, POSTROUTING, FORWARD) or name.startswith(
        ("NBK-SVC-", "NBK-SEP-")
    )


def svc_chain(rule: ServicePortRule) -> str:
    return f"NBK-SVC-{_hash(rule.id, rule.protocol)}"


def sep_chain(rule: ServicePortRule, ip: str, port: int) -> str:
    return f"NBK-SEP-{_hash(rule.id, rule.protocol, ip, str(port))}"


def _comment(text: str) -> str:
    return f'-m comment --comment "{text}"'


@dataclass(frozen=True)
class _Rendered:
    """What one service port contributes to each of our chains."""

    services: tuple[str, ...] = ()  # nat NBK-SERVICES lines
    nodeports: tuple[str, ...] = ()  # nat NBK-NODEPORTS lines
    reject: tuple[str, ...] = ()  # filter NBK-SERVICES lines
    chains: tuple[tuple[str, tuple[str, ...]], ...] = ()  # its own NBK-SVC-/NBK-SEP- chains


@functools.lru_cache(maxsize=1 << 16)
def _render_rule(rule: ServicePortRule, cluster_cidr: str) -> _Rendered:
    # Memoised (a rule is a frozen value): with thousands of services, an endpoint change then
    # renders one service instead of all of them, which keeps the change-to-rules latency low.
    proto = rule.protocol.lower()
    match = f"-d {rule.cluster_ip}/32 -p {proto} --dport {rule.port}"
    comment = _comment(f"{rule.id} cluster IP")
    if not rule.backends:
        reject = [f"-A {SERVICES} {comment} {match} -j REJECT"]
        if rule.node_port:
            reject.append(
                f"-A {SERVICES} {_comment(f'{rule.id} node port')} -m addrtype --dst-type LOCAL"
                f" -p {proto} --dport {rule.node_port} -j REJECT"
            )
        return _Rendered(reject=tuple(reject))
    svc = svc_chain(rule)
    nodeports: tuple[str, ...] = ()
    if rule.node_port:
        np = f"-p {proto} --dport {rule.node_port}"
        nodeports = (f"-A {NODEPORTS} {np} -j {MARK_MASQ}", f"-A {NODEPORTS} {np} -j {svc}")
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
            body.append(f"-A {svc} -m statistic --mode random --probability {1.0 / (n - i):.10f} -j {sep}")
        else:
            body.append(f"-A {svc} -j {sep}")
    chains = [(svc, tuple(body))]
    for sep, ip, port in seps:
        recent = f" -m recent --name {sep} --set" if rule.session_affinity else ""
        chains.append(
            (
                sep,
                (
                    f"-A {sep} -s {ip}/32 -j {MARK_MASQ}",
                    f"-A {sep} -p {proto}{recent} -j DNAT --to-destination {ip}:{port}",
                ),
            )
        )
    return _Rendered(
        services=(f"-A {SERVICES} {comment} {match} -j {svc}",), nodeports=nodeports, chains=tuple(chains)
    )


def render_tables(
    rules: Iterable[ServicePortRule], *, cluster_cidr: str = "10.244.0.0/16", node_ips: Sequence[str] = ()
) -> Tables:
    """Our chains, table by table, for this proxy table. Pure."""
    nat: dict[str, Sequence[str]] = {}
    filt: dict[str, Sequence[str]] = {}
    services: list[str] = []
    nodeports: list[str] = []
    reject: list[str] = []
    nat[SERVICES], nat[NODEPORTS] = services, nodeports
    nat[MARK_MASQ] = [f"-A {MARK_MASQ} -j MARK --or-mark {MASQ_BIT}"]
    nat[POSTROUTING] = [
        f"-A {POSTROUTING} -m mark ! --mark {MASQ_MARK} -j RETURN",
        f"-A {POSTROUTING} -j MARK --xor-mark {MASQ_BIT}",
        f"-A {POSTROUTING} {_comment('nbkube service traffic requiring SNAT')} -j MASQUERADE",
    ]
    filt[SERVICES] = reject
    filt[FORWARD] = [
        f"-A {FORWARD} -m mark --mark {MASQ_MARK} -j ACCEPT",
        f"-A {FORWARD} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ]
    for rule in rules:
        part = _render_rule(rule, cluster_cidr)
        services += part.services
        nodeports += part.nodeports
        reject += part.reject
        for chain, lines in part.chains:
            nat[chain] = lines  # a shared tuple from the memo: no copy
    # NodePorts last: the address-type test is the most expensive match in the chain.
    if node_ips:
        services += [f"-A {SERVICES} -d {ip}/32 -j {NODEPORTS}" for ip in node_ips]
    else:
        services.append(f"-A {SERVICES} -m addrtype --dst-type LOCAL -j {NODEPORTS}")
    return {"filter": filt, "nat": nat}


def restore_text(
    new: Tables,
    old: Tables | None = None,
    existing: Iterable[tuple[str, str]] = (),
    extra: dict[str, list[str]] | None = None,
) -> str:
    """iptables-restore input that turns `old` (what we last wrote) into `new`. Pure.

    Chains unchanged since `old` are left alone; chains in `old` or `existing` (found in the kernel)
    but not in `new` are flushed and deleted. With `old=None` every chain of `new` is written.
    `extra` lines (per table) go last in their table: the jump rules into our chains.
    """
    extra = extra or {}
    stale = {(t, c) for t, chains in (old or {}).items() for c in chains} | set(existing)
    out: list[str] = []
    for table in sorted(set(new) | {t for t, _ in stale} | {t for t, lines in extra.items() if lines}):
        chains = new.get(table, {})
        before = (old or {}).get(table, {})
        write = [c for c, lines in chains.items() if old is None or before.get(c) != lines]
        drop = sorted(c for t, c in stale if t == table and c not in chains)
        if not write and not drop and not extra.get(table):
            continue
        out.append(f"*{table}")
        out += [f":{c} - [0:0]" for c in write + drop]
        for c in write:
            out += chains[c]
        out += extra.get(table, [])
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
        self._applied: Tables | None = None  # what the kernel holds, as we last wrote it
        self.restores = 0  # how many iptables-restore runs, for tests and benchmarks

    def _cmd(self, *args: str) -> list[str]:
        return (["ip", "netns", "exec", self.netns] if self.netns else []) + list(args)

    def _run(self, args: list[str], input: str | None = None) -> str:
        try:
            proc = subprocess.run(args, input=input, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise IptablesError(f"{' '.join(args[:6])}: {exc}") from exc
        if proc.returncode != 0:
            where = f"netns {self.netns}" if self.netns else "host namespace"
            raise IptablesError(f"{' '.join(args)} in {where} failed: {proc.stderr.strip()}")
        return proc.stdout

    def _restore(self, text: str) -> None:
        if text:
            self._run(self._cmd("iptables-restore", "-w", "--noflush"), input=text)
            self.restores += 1

    def scan(self) -> tuple[set[tuple[str, str]], set[tuple[str, str, str]]]:
        """Our chains and our jump rules in the kernel now (maybe from an earlier run), read with one
        iptables-save: ({(table, chain)}, {(table, built-in chain, spec)})."""
        chains: set[tuple[str, str]] = set()
        jumps: set[tuple[str, str, str]] = set()
        table = ""
        wanted = {(t, f"-A {c} {spec}"): (t, c, spec) for t, c, spec in JUMPS}
        for line in self._run(self._cmd("iptables-save")).splitlines():
            if line.startswith("*"):
                table = line[1:].strip()
            elif line.startswith(":NBK-") and _is_proxy_chain(line[1:].split()[0]):
                chains.add((table, line[1:].split()[0]))
            elif (table, line) in wanted:
                jumps.add(wanted[(table, line)])
        return chains, jumps

    def sync(self, rules: Iterable[ServicePortRule]) -> bool:
        """Make the kernel match `rules`; False when nothing had changed (no restore run)."""
        tables = render_tables(rules, cluster_cidr=self.cluster_cidr, node_ips=self.node_ips)
        # Same tables <=> same rendered text (the text is a function of the tables): no restore.
        if tables == self._applied:
            return False
        try:
            self._apply(tables)
        except IptablesError:
            if self._applied is None:
                raise
            # Someone changed our chains under us (or a previous run half-failed): scan the
            # kernel and write everything once more before giving up.
            self._applied = None
            self._apply(tables)
        return True

    def _apply(self, tables: Tables) -> None:
        extra: dict[str, list[str]] = {}
        existing: set[tuple[str, str]] = set()
        if self._applied is None:
            # First sync of this object: adopt what an earlier run left (rewrite or delete its
            # chains) and add the missing jumps in the same transaction as the chains they target.
            existing, jumps = self.scan()
            for table, chain, spec in JUMPS:
                if (table, chain, spec) not in jumps:
                    extra.setdefault(table, []).append(f"-I {chain} 1 {spec}")
        self._restore(restore_text(tables, self._applied, existing, extra))
        self._applied = tables

    def cleanup(self) -> None:
        """Remove our jumps and chains in one restore; nothing else is touched.

        A namespace that is already gone took our rules with it: nothing to do then.
        """
        if self.netns and not os.path.exists(f"/var/run/netns/{self.netns}"):
            self._applied = None
            return
        existing, jumps = self.scan()
        extra: dict[str, list[str]] = {}
        for table, chain, spec in JUMPS:
            if (table, chain, spec) in jumps:
                extra.setdefault(table, []).append(f"-D {chain} {spec}")
        self._restore(restore_text({}, None, existing, extra))
        self._applied = None
