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
- the rendering is pure (no root needed to test it): `render_tables` / `render` from scratch, and
  `update(snapshot, rules)`, which re-renders only the rules that differ from the last sync's (by
  identity first: `rules.RuleCache` hands unchanged services' rules back as the same objects) and
  rebuilds the shared NBK-SERVICES / NBK-NODEPORTS chains only when a service's line in them
  changed. An endpoint change then costs rendering and restoring one NBK-SVC- chain and its new
  NBK-SEP- chains (plus deleting the stale ones), however many services there are; the tests hold
  `update` to equal a full render after any sequence of changes, and the kernel to equal a full sync;
- iptables-restore is started inside the namespace by the sync thread itself (`nbkube.node.netns`), not
  through `ip netns exec`: one process start per sync instead of two.

What an endpoint change costs (benchmarks/proxy.py measures it): little Python (the one service
recomputed and rendered, the diff), one iptables-restore start, and then the kernel: on nf_tables a
restore that only adds chains and rules exits quickly, one that deletes anything (flushing a chain
deletes its rules) exits several times later, whatever the ruleset size: iptables-restore's close
of its netlink socket waits for the deleted objects to be released (an RCU grace period), although
the new rules were live before. So a sync that can do
without deleting does (`prepend`: new chains, the service chain's new body inserted in front of
its old one, which is then dead), and `compact` deletes the leftovers in one restore when the node
is quiet (the proxy runner's idle hook) or when they pile up; syncs that must delete anyway (a
service added or removed, its last endpoint gone or back) compact in the same restore.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nbkube.node.netns import run_in
from nbkube.node.proxy.rules import ServicePortRule

__all__ = [
    "Change",
    "IptablesError",
    "IptablesProxy",
    "Snapshot",
    "Tables",
    "change_text",
    "prepend",
    "render",
    "render_tables",
    "restore_text",
    "run_iptables",
    "snapshot",
    "update",
]

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


def _fixed_chains() -> tuple[dict[str, Sequence[str]], dict[str, Sequence[str]]]:
    """The chains every table has, whatever the services: (nat, filter)."""
    nat: dict[str, Sequence[str]] = {
        SERVICES: [],  # placeholders, filled by _dispatch: keeps the order render_tables always had
        NODEPORTS: [],
        MARK_MASQ: [f"-A {MARK_MASQ} -j MARK --or-mark {MASQ_BIT}"],
        POSTROUTING: [
            f"-A {POSTROUTING} -m mark ! --mark {MASQ_MARK} -j RETURN",
            f"-A {POSTROUTING} -j MARK --xor-mark {MASQ_BIT}",
            f"-A {POSTROUTING} {_comment('nbkube service traffic requiring SNAT')} -j MASQUERADE",
        ],
    }
    filt: dict[str, Sequence[str]] = {
        SERVICES: [],
        FORWARD: [
            f"-A {FORWARD} -m mark --mark {MASQ_MARK} -j ACCEPT",
            f"-A {FORWARD} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        ],
    }
    return nat, filt


def _dispatch(parts: Iterable[_Rendered], node_ips: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """The shared chains all service ports write into: nat NBK-SERVICES, nat NBK-NODEPORTS and
    filter NBK-SERVICES, in rule order."""
    services: list[str] = []
    nodeports: list[str] = []
    reject: list[str] = []
    for part in parts:
        services += part.services
        nodeports += part.nodeports
        reject += part.reject
    # NodePorts last: the address-type test is the most expensive match in the chain.
    if node_ips:
        services += [f"-A {SERVICES} -d {ip}/32 -j {NODEPORTS}" for ip in node_ips]
    else:
        services.append(f"-A {SERVICES} -m addrtype --dst-type LOCAL -j {NODEPORTS}")
    return services, nodeports, reject


@dataclass(frozen=True)
class Snapshot:
    """A rendered table and what it was rendered from: the input for rendering the next one
    incrementally. Never modified once built (a new sync builds a new one)."""

    tables: Tables
    rules: dict[str, ServicePortRule]  # rule id -> rule, in rule order
    parts: dict[str, _Rendered]  # rule id -> its rendering
    cluster_cidr: str
    node_ips: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    """What `update` found: the new snapshot, and which of our chains to rewrite or delete."""

    new: Snapshot
    write: tuple[tuple[str, str], ...]  # (table, chain), in the order to write them
    drop: tuple[tuple[str, str], ...]

    def __bool__(self) -> bool:
        return bool(self.write or self.drop)


def snapshot(
    rules: Iterable[ServicePortRule], *, cluster_cidr: str = "10.244.0.0/16", node_ips: Sequence[str] = ()
) -> Snapshot:
    """The whole table for these rules, from scratch. Pure."""
    parts: dict[str, _Rendered] = {}
    by_id: dict[str, ServicePortRule] = {}
    nat, filt = _fixed_chains()
    for rule in rules:
        rid = rule.id
        by_id[rid] = rule
        parts[rid] = part = _render_rule(rule, cluster_cidr)
        for chain, lines in part.chains:
            nat[chain] = lines  # a shared tuple from the memo: no copy
    nat[SERVICES], nat[NODEPORTS], filt[SERVICES] = _dispatch(parts.values(), node_ips)
    return Snapshot({"filter": filt, "nat": nat}, by_id, parts, cluster_cidr, tuple(node_ips))


def update(old: Snapshot, rules: Iterable[ServicePortRule]) -> Change:
    """The table for `rules`, rendered from `old` by touching only what changed. Pure.

    A rule equal to (or the same object as) its predecessor keeps its chains untouched; a changed
    rule's chains are re-rendered and compared line for line; the shared dispatch chains
    (NBK-SERVICES, NBK-NODEPORTS) are rebuilt only when a rule's contribution to them changed or
    the rules came in another order. An endpoint change of one service therefore touches one
    NBK-SVC- chain and its NBK-SEP- chains, whatever the number of services. The result's tables
    equal `snapshot(rules)`'s (the tests hold it to that).
    """
    new_rules: dict[str, ServicePortRule] = {}
    changed: list[ServicePortRule] = []
    for rule in rules:
        rid = rule.id
        new_rules[rid] = rule
        prev = old.rules.get(rid)
        if prev is not rule and prev != rule:
            changed.append(rule)
    removed = [rid for rid in old.rules if rid not in new_rules]
    reordered = len(new_rules) != len(old.rules) or (
        not removed and not all(a == b for a, b in zip(old.rules, new_rules, strict=True))
    )
    if not changed and not removed and not reordered:
        return Change(old, (), ())
    old_nat = old.tables["nat"]
    nat = dict(old_nat)
    filt = dict(old.tables["filter"])
    parts = dict(old.parts)
    gone: list[str] = []
    dispatch = reordered or bool(removed)
    for rid in removed:
        part = parts.pop(rid)
        gone += (c for c, _ in part.chains)
        dispatch = dispatch or bool(part.services or part.nodeports or part.reject)
    write: list[tuple[str, str]] = []
    for rule in changed:
        rid = rule.id
        before = parts.get(rid)
        part = _render_rule(rule, old.cluster_cidr)
        parts[rid] = part
        if before is not None:
            gone += (c for c, _ in before.chains)
            dispatch = dispatch or (before.services, before.nodeports, before.reject) != (
                part.services,
                part.nodeports,
                part.reject,
            )
        else:
            dispatch = True
    for chain in gone:
        nat.pop(chain, None)
    for rule in changed:
        for chain, lines in parts[rule.id].chains:
            nat[chain] = lines
            if old_nat.get(chain) != lines:
                write.append(("nat", chain))
    if dispatch:
        # Rule order as in `rules`, which is what `snapshot` uses.
        ordered = {rid: parts[rid] for rid in new_rules}
        parts = ordered
        services, nodeports, reject = _dispatch(ordered.values(), old.node_ips)
        shared: tuple[tuple[str, str, list[str]], ...] = (
            ("nat", SERVICES, services),
            ("nat", NODEPORTS, nodeports),
            ("filter", SERVICES, reject),
        )
        for table, chain, shared_lines in shared:
            target = nat if table == "nat" else filt
            if target.get(chain) != shared_lines:
                target[chain] = shared_lines
                write.append((table, chain))
    drop = tuple(("nat", c) for c in dict.fromkeys(gone) if c not in nat)
    new = Snapshot({"filter": filt, "nat": nat}, new_rules, parts, old.cluster_cidr, old.node_ips)
    return Change(new, tuple(write), drop)


def render_tables(
    rules: Iterable[ServicePortRule], *, cluster_cidr: str = "10.244.0.0/16", node_ips: Sequence[str] = ()
) -> Tables:
    """Our chains, table by table, for this proxy table. Pure."""
    return snapshot(rules, cluster_cidr=cluster_cidr, node_ips=node_ips).tables


def _restore_input(
    new: Tables,
    write: Iterable[tuple[str, str]],
    drop: Iterable[tuple[str, str]],
    extra: dict[str, list[str]] | None = None,
) -> str:
    """iptables-restore input that declares (so flushes) and refills the `write` chains of `new`,
    deletes the `drop` chains, and appends the `extra` lines per table, one COMMIT per table.

    Only the tables that have something to do appear: with the nft backend each table named costs
    a look at that table in the kernel."""
    extra = extra or {}
    writes: dict[str, list[str]] = {}
    drops: dict[str, list[str]] = {}
    for table, chain in write:
        writes.setdefault(table, []).append(chain)
    for table, chain in drop:
        drops.setdefault(table, []).append(chain)
    out: list[str] = []
    for table in sorted(set(writes) | set(drops) | {t for t, lines in extra.items() if lines}):
        chains = new.get(table, {})
        w, d = writes.get(table, []), sorted(drops.get(table, []))
        out.append(f"*{table}")
        out += [f":{c} - [0:0]" for c in w + d]
        for c in w:
            out += chains[c]
        out += extra.get(table, [])
        out += [f"-X {c}" for c in d]
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


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
    stale = {(t, c) for t, chains in (old or {}).items() for c in chains} | set(existing)
    write: list[tuple[str, str]] = []
    for table in sorted(new):
        before = (old or {}).get(table, {})
        write += [(table, c) for c, lines in new[table].items() if old is None or before.get(c) != lines]
    drop = [(t, c) for t, c in stale if c not in new.get(t, {})]
    return _restore_input(new, write, drop, extra)


def change_text(change: Change) -> str:
    """iptables-restore input for an incremental `update`: only the chains it found changed. Pure."""
    return _restore_input(change.new.tables, change.write, change.drop)


MAX_DEAD_LINES = 64  # lines an NBK-SVC- chain may hold (live + dead) before a sync compacts it


def prepend(change: Change, kernel: Tables) -> tuple[str, Tables] | None:
    """The no-deletion way to apply `change` to a kernel that holds `kernel`. Pure.

    Returns (iptables-restore input, what the kernel holds after it), or None when the change needs
    a deletion: a dispatch line changed, or a chain's new content cannot go in front of the old.
    New chains are created; a changed NBK-SVC- chain gets its new body inserted at its head (`-I
    CHAIN 1`, last line first) and keeps its old lines, now dead: a service chain's body always
    ends with an unconditional jump to an endpoint chain, which ends with an unconditional DNAT
    for the service's protocol (the only protocol the dispatch lines send to it), so no packet
    goes past the new body. Stale endpoint chains stay, still referenced by the dead lines.
    `IptablesProxy.compact` rewrites all of that into the canonical form later, when the node is
    quiet. Why: on nf_tables, a restore that deletes anything (flushing a chain deletes its rules)
    exits ~12 ms later than one that only adds, waiting for the deleted rules to be released.
    """
    knat = kernel.get("nat", {})
    new_nat = change.new.tables["nat"]
    declare: list[str] = []
    fill: list[str] = []
    insert: list[str] = []
    nat = dict(knat)
    for table, chain in change.write:
        if table != "nat":
            return None
        body = tuple(new_nat[chain])
        have = knat.get(chain)
        if have is None:
            declare.append(f":{chain} - [0:0]")
            fill += body
            nat[chain] = body
            continue
        have = tuple(have)
        if have == body:
            continue  # a chain left from before (dead, not yet compacted) with this very content
        head = f"-A {chain} "
        if (
            not chain.startswith("NBK-SVC-")
            or not body
            or not body[-1].startswith(f"{head}-j NBK-SEP-")
            or len(body[-1].split()) != 4  # "-A", chain, "-j", target: unconditional
            or len(have) + len(body) > MAX_DEAD_LINES
        ):
            return None
        insert += [f"-I {chain} 1 {line[len(head) :]}" for line in reversed(body)]
        nat[chain] = body + have
    if not declare and not insert:
        return "", kernel
    text = "\n".join(["*nat", *declare, *fill, *insert, "COMMIT", ""])
    return text, {**kernel, "nat": nat}


def render(
    rules: Iterable[ServicePortRule], *, cluster_cidr: str = "10.244.0.0/16", node_ips: Sequence[str] = ()
) -> str:
    """The whole content of our chains as iptables-restore input. Pure."""
    return restore_text(render_tables(rules, cluster_cidr=cluster_cidr, node_ips=node_ips))


def run_iptables(netns: str | None, args: list[str], input: str | None = None) -> str:
    """Run an iptables program (`iptables-restore`, `iptables-save`) in network namespace `netns`
    (the host's when None): its stdout, or IptablesError naming the command, its stderr and where.

    The proxy and the NetworkPolicy firewall (nbkube.node.firewall.iptables) both program a node's
    namespace this way."""
    where = f"netns {netns}" if netns else "host namespace"
    try:
        proc = run_in(netns, args, input)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise IptablesError(f"{' '.join(args[:6])} in {where}: {exc}") from exc
    if proc.returncode != 0:
        raise IptablesError(f"{' '.join(args)} in {where} failed: {proc.stderr.strip()}")
    return proc.stdout


class IptablesProxy:
    """Programs one network namespace's iptables (the host's when `netns` is None)."""

    def __init__(
        self, netns: str | None, node_ips: Sequence[str] = (), cluster_cidr: str = "10.244.0.0/16"
    ) -> None:
        self.netns = netns
        self.node_ips = tuple(node_ips)
        self.cluster_cidr = cluster_cidr
        self._applied: Snapshot | None = None  # the canonical table of the last synced rules
        # What the kernel holds: `_applied.tables` itself after a full or compacting restore, or
        # that plus dead lines and chains after syncs that only added (see `prepend`).
        self._kernel: Tables | None = None
        self.uncompacted = 0  # syncs applied by `prepend` since the kernel was last canonical
        self.max_uncompacted = 256  # then the next sync compacts, quiet or not
        self.restores = 0  # how many iptables-restore runs, for tests and benchmarks

    def _run(self, args: list[str], input: str | None = None) -> str:
        return run_iptables(self.netns, args, input)

    def _restore(self, text: str) -> None:
        if text:
            self._run(["iptables-restore", "-w", "--noflush"], input=text)
            self.restores += 1

    def scan(self) -> tuple[set[tuple[str, str]], set[tuple[str, str, str]]]:
        """Our chains and our jump rules in the kernel now (maybe from an earlier run), read with one
        iptables-save: ({(table, chain)}, {(table, built-in chain, spec)})."""
        chains: set[tuple[str, str]] = set()
        jumps: set[tuple[str, str, str]] = set()
        table = ""
        wanted = {(t, f"-A {c} {spec}"): (t, c, spec) for t, c, spec in JUMPS}
        for line in self._run(["iptables-save"]).splitlines():
            if line.startswith("*"):
                table = line[1:].strip()
            elif line.startswith(":NBK-") and _is_proxy_chain(line[1:].split()[0]):
                chains.add((table, line[1:].split()[0]))
            elif (table, line) in wanted:
                jumps.add(wanted[(table, line)])
        return chains, jumps

    def sync(self, rules: Iterable[ServicePortRule]) -> bool:
        """Make the kernel match `rules`; False when nothing had changed (no restore run)."""
        if self._applied is None or self._kernel is None:
            self._full(snapshot(rules, cluster_cidr=self.cluster_cidr, node_ips=self.node_ips))
            return True
        change = update(self._applied, rules)
        if not change:
            return False
        fast = prepend(change, self._kernel) if self.uncompacted < self.max_uncompacted else None
        try:
            if fast is not None:
                self._restore(fast[0])
                self._kernel = fast[1]
                self.uncompacted += 1
            elif self.uncompacted:
                # Deleting anyway: compact everything in the same restore, the wait is paid once.
                self._restore(restore_text(change.new.tables, self._kernel))
                self._kernel, self.uncompacted = change.new.tables, 0
            else:
                self._restore(change_text(change))
                self._kernel = change.new.tables
        except IptablesError:
            # Someone changed our chains under us (or a previous run half-failed): scan the
            # kernel and write everything once more before giving up.
            self._applied = self._kernel = None
            self._full(change.new)
            return True
        self._applied = change.new
        return True

    def compact(self) -> bool:
        """Rewrite what `prepend` left (dead lines, stale chains) into the canonical chains, in one
        restore; the proxy runner calls it when no change has come for a while. False when the
        kernel was canonical already."""
        if self._applied is None or self._kernel is None or not self.uncompacted:
            return False
        snap = self._applied
        try:
            self._restore(restore_text(snap.tables, self._kernel))
        except IptablesError:
            self._applied = self._kernel = None
            self._full(snap)
            return True
        self._kernel, self.uncompacted = snap.tables, 0
        return True

    def _full(self, snap: Snapshot) -> None:
        """Write every chain of `snap`, adopting what an earlier run left (its chains are rewritten
        or deleted) and adding the missing jumps in the same transaction as the chains they target."""
        existing, jumps = self.scan()
        extra: dict[str, list[str]] = {}
        for table, chain, spec in JUMPS:
            if (table, chain, spec) not in jumps:
                extra.setdefault(table, []).append(f"-I {chain} 1 {spec}")
        self._restore(restore_text(snap.tables, None, existing, extra))
        self._applied, self._kernel, self.uncompacted = snap, snap.tables, 0

    def cleanup(self) -> None:
        """Remove our jumps and chains in one restore; nothing else is touched.

        A namespace that is already gone took our rules with it: nothing to do then.
        """
        if self.netns and not os.path.exists(f"/var/run/netns/{self.netns}"):
            self._applied = self._kernel = None
            return
        existing, jumps = self.scan()
        extra: dict[str, list[str]] = {}
        for table, chain, spec in JUMPS:
            if (table, chain, spec) in jumps:
                extra.setdefault(table, []).append(f"-D {chain} {spec}")
        self._restore(restore_text({}, None, existing, extra))
        self._applied = self._kernel = None
