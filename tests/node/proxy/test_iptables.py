"""The iptables proxy: pure rendering (always), incremental syncs against full ones in scratch
namespaces, and real traffic through 3 node namespaces (root)."""

from __future__ import annotations

import collections
import os
import random
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest

from nbkube.node.network.lab import PodLab, lab_available
from nbkube.node.proxy.iptables import (
    JUMPS,
    IptablesProxy,
    Tables,
    change_text,
    render,
    render_tables,
    restore_text,
    sep_chain,
    snapshot,
    svc_chain,
    update,
)
from nbkube.node.proxy.rules import Backend, ServicePortRule, compute_rules


def _rule(backends=(("10.244.1.2", 80),), *, name="default/web", ip="10.96.0.10", port=8000,
          node_port: int | None = 30001, affinity=False) -> ServicePortRule:  # fmt: skip
    return ServicePortRule(
        service=name, port_name="", protocol="TCP", cluster_ip=ip, port=port, node_port=node_port,
        session_affinity=affinity, affinity_timeout=600,
        backends=tuple(Backend(i, p) for i, p in backends),
    )  # fmt: skip


# --- pure rendering -------------------------------------------------------------------------------


def test_render_spreads_evenly_like_kube_proxy() -> None:
    rule = _rule([("10.244.1.2", 80), ("10.244.2.2", 80), ("10.244.3.2", 80)])
    nat = render_tables([rule])["nat"]
    svc = nat[svc_chain(rule)]
    assert (
        svc[0]
        == f"-A {svc_chain(rule)} ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp --dport 8000 -j NBK-MARK-MASQ"
    )
    seps = [sep_chain(rule, f"10.244.{n}.2", 80) for n in (1, 2, 3)]
    assert list(svc[1:]) == [
        f"-A {svc_chain(rule)} -m statistic --mode random --probability 0.3333333333 -j {seps[0]}",
        f"-A {svc_chain(rule)} -m statistic --mode random --probability 0.5000000000 -j {seps[1]}",
        f"-A {svc_chain(rule)} -j {seps[2]}",
    ]
    assert list(nat[seps[1]]) == [
        f"-A {seps[1]} -s 10.244.2.2/32 -j NBK-MARK-MASQ",
        f"-A {seps[1]} -p tcp -j DNAT --to-destination 10.244.2.2:80",
    ]
    assert f"-A NBK-NODEPORTS -p tcp --dport 30001 -j {svc_chain(rule)}" in nat["NBK-NODEPORTS"]
    assert nat["NBK-NODEPORTS"][0] == "-A NBK-NODEPORTS -p tcp --dport 30001 -j NBK-MARK-MASQ"
    assert nat["NBK-SERVICES"][-1] == "-A NBK-SERVICES -m addrtype --dst-type LOCAL -j NBK-NODEPORTS"
    assert all(c.startswith("NBK-") and len(c) <= 28 for t in render_tables([rule]).values() for c in t)


def test_render_node_ips_session_affinity_and_no_endpoints() -> None:
    sticky = _rule([("10.244.1.2", 80), ("10.244.2.2", 8080)], affinity=True)
    empty = _rule([], name="default/empty", ip="10.96.0.11", node_port=30002)
    tables = render_tables([sticky, empty], node_ips=["10.240.0.2"])
    nat, filt = tables["nat"], tables["filter"]
    sep = sep_chain(sticky, "10.244.2.2", 8080)
    assert (
        f"-A {svc_chain(sticky)} -m recent --name {sep} --rcheck --seconds 600 --reap -j {sep}"
        in nat[svc_chain(sticky)]
    )
    assert (
        f"-A {sep} -p tcp -m recent --name {sep} --set -j DNAT --to-destination 10.244.2.2:8080" in nat[sep]
    )
    assert nat["NBK-SERVICES"][-1] == "-A NBK-SERVICES -d 10.240.0.2/32 -j NBK-NODEPORTS"
    # No endpoints: no nat chain at all, REJECT (filter) on the cluster IP and the node port.
    assert svc_chain(empty) not in nat
    assert any("10.96.0.11/32" in r and r.endswith("-j REJECT") for r in filt["NBK-SERVICES"])
    assert any("--dport 30002 -j REJECT" in r for r in filt["NBK-SERVICES"])


def test_render_is_deterministic_and_declares_every_chain_once() -> None:
    rules = [_rule([("10.244.1.2", 80)]), _rule([("10.244.2.2", 80)], name="default/api", ip="10.96.0.12")]
    text = render(rules)
    assert text == render(list(rules))
    assert text.startswith("*filter\n") and text.endswith("COMMIT\n") and text.count("COMMIT") == 2
    for table in text.split("COMMIT\n")[:2]:
        chains = [line[1:].split()[0] for line in table.splitlines() if line.startswith(":")]
        assert len(chains) == len(set(chains))
    declared = {line[1:].split()[0] for line in text.splitlines() if line.startswith(":")}
    jumps = {line.split(" -j ")[-1].split()[0] for line in text.splitlines() if " -j NBK-" in line}
    assert jumps <= set(declared)  # every jump target is declared in the same text


def test_restore_text_writes_only_changed_chains_and_deletes_stale() -> None:
    old_rule = _rule([("10.244.1.2", 80), ("10.244.2.2", 80)])
    new_rule = _rule([("10.244.1.2", 80), ("10.244.3.2", 80)])
    other = _rule([("10.244.1.9", 80)], name="default/other", ip="10.96.0.20", node_port=None)
    old = render_tables([old_rule, other])
    new = render_tables([new_rule, other])
    delta = restore_text(new, old)
    assert "*filter" not in delta  # nothing changed there
    gone, added = sep_chain(old_rule, "10.244.2.2", 80), sep_chain(new_rule, "10.244.3.2", 80)
    assert f":{gone} - [0:0]" in delta and f"-X {gone}" in delta and f":{added} - [0:0]" in delta
    assert f":{svc_chain(new_rule)} - [0:0]" in delta
    assert svc_chain(other) not in delta and "NBK-SERVICES" not in delta  # untouched chains
    assert restore_text(new, new) == ""
    # Chains found in the kernel from an earlier run are removed too.
    assert "-X NBK-SVC-LEFTOVER" in restore_text(new, None, [("nat", "NBK-SVC-LEFTOVER")])


def test_render_from_compute_rules() -> None:
    svc = {"kind": "Service", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 8000, "nodePort": 30001}]}}  # fmt: skip
    ep = {"kind": "Endpoints", "metadata": {"name": "web", "namespace": "default"},
          "subsets": [{"addresses": [{"ip": "10.244.1.2"}], "ports": [{"port": 80}]}]}  # fmt: skip
    text = render(compute_rules([svc], [ep]))
    assert "DNAT --to-destination 10.244.1.2:80" in text and "--dport 30001" in text


# --- incremental rendering (pure) ----------------------------------------------------------------


def _random_rule(rng: random.Random, i: int) -> ServicePortRule:
    ips = {
        (f"10.244.{rng.randint(1, 3)}.{rng.randint(2, 6)}", rng.choice([80, 8080]))
        for _ in range(rng.randint(0, 3))
    }
    return _rule(sorted(ips), name=f"default/s{i}", ip=f"10.96.1.{i + 1}", port=rng.choice([80, 8000]),
                 node_port=rng.choice([None, 30100 + i]), affinity=rng.random() < 0.3)  # fmt: skip


def _step(rng: random.Random, current: dict[int, ServicePortRule]) -> list[ServicePortRule]:
    """One random change: a service added, changed (endpoints, ports, affinity) or removed."""
    i = rng.randrange(12)
    if rng.random() < 0.25:
        current.pop(i, None)
    else:
        current[i] = _random_rule(rng, i)
    return sorted(current.values(), key=lambda r: r.id)


def _apply_text(kernel: dict[str, dict[str, list[str]]], text: str) -> None:
    """What iptables-restore --noflush does to our chains, enough to check the restore input."""
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            kernel.setdefault(table, {})[line[1:].split()[0]] = []  # declared = created or flushed
        elif line.startswith("-A "):
            kernel[table][line.split()[1]].append(line)
        elif line.startswith("-I "):
            _, chain, pos, spec = line.split(" ", 3)
            assert pos == "1" and chain in kernel[table], line
            kernel[table][chain].insert(0, f"-A {chain} {spec}")
        elif line.startswith("-X "):
            chain = line.split()[1]
            assert not kernel[table][chain], f"deleting non-empty {chain}"
            assert not any(f"-j {chain}" in r for c in kernel[table].values() for r in c), f"{chain} in use"
            del kernel[table][chain]
        else:
            assert line == "COMMIT", line


def _endpoint_step(rng: random.Random, current: dict[int, ServicePortRule]) -> list[ServicePortRule]:
    """One service's endpoints replaced (at least one left): what the fast path is for."""
    i = rng.choice(sorted(current))
    old = current[i]
    ips = {(f"10.244.{rng.randint(1, 3)}.{rng.randint(2, 9)}", 80) for _ in range(rng.randint(1, 3))}
    current[i] = _rule(sorted(ips), name=old.service, ip=old.cluster_ip, port=old.port,
                       node_port=old.node_port, affinity=old.session_affinity)  # fmt: skip
    return sorted(current.values(), key=lambda r: r.id)


def _live(tables: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, list[str]]]:
    """What packets can see: each service chain up to its first unconditional jump (nothing after
    it is reached), and only the chains reachable from our fixed chains."""
    out: dict[str, dict[str, list[str]]] = {}
    for table, chains in tables.items():
        cut: dict[str, list[str]] = {}
        for chain, lines in chains.items():
            cut[chain] = list(lines)
            for i, line in enumerate(lines):
                if chain.startswith("NBK-SVC-") and len(line.split()) == 4 and " -j NBK-SEP-" in line:
                    cut[chain] = list(lines[: i + 1])
                    break
        seen: set[str] = set()
        todo = [c for c in cut if not c.startswith(("NBK-SVC-", "NBK-SEP-"))]
        while todo:
            chain = todo.pop()
            if chain in seen or chain not in cut:
                continue
            seen.add(chain)
            todo += [line.split(" -j ")[-1].split()[0] for line in cut[chain] if " -j NBK-" in line]
        out[table] = {c: cut[c] for c in sorted(seen)}
    return out


class _ModelProxy(IptablesProxy):
    """The proxy's own sync logic against a model of the kernel instead of iptables-restore."""

    def __init__(self) -> None:
        super().__init__(None, ["10.240.0.2"])
        self.kernel: dict[str, dict[str, list[str]]] = {}
        self.texts: list[str] = []

    def _restore(self, text: str) -> None:
        if text:
            self.texts.append(text)
            _apply_text(self.kernel, text)
            self.restores += 1

    def scan(self) -> tuple[set[tuple[str, str]], set[tuple[str, str, str]]]:
        # Our chains as they are; the jumps from the built-in chains present (not modelled).
        return {(t, c) for t, chains in self.kernel.items() for c in chains}, set(JUMPS)


def _plain(tables: Tables) -> dict[str, dict[str, list[str]]]:
    return {t: {c: list(lines) for c, lines in chains.items()} for t, chains in tables.items()}


def test_incremental_update_equals_a_full_render_through_random_changes() -> None:
    rng = random.Random(4)
    current: dict[int, ServicePortRule] = {}
    snap = snapshot([], node_ips=["10.240.0.2"])
    kernel: dict[str, dict[str, list[str]]] = {}
    _apply_text(kernel, restore_text(snap.tables))
    for step in range(400):
        rules = _step(rng, current)
        change = update(snap, rules)
        full = snapshot(rules, node_ips=["10.240.0.2"])
        assert change.new.tables == full.tables, step
        _apply_text(kernel, change_text(change))
        assert kernel == {
            t: {c: list(lines) for c, lines in chains.items()} for t, chains in full.tables.items()
        }
        # Only chains whose content differs are written.
        before = snap.tables
        for table, chain in change.write:
            assert before.get(table, {}).get(chain) != full.tables[table][chain], (step, chain)
        snap = change.new


def test_an_endpoint_change_writes_only_that_services_chains() -> None:
    a = _rule([("10.244.1.2", 80), ("10.244.2.2", 80)])
    b = _rule([("10.244.1.9", 80)], name="default/other", ip="10.96.0.20", node_port=30002)
    snap = snapshot([a, b])
    a2 = _rule([("10.244.1.2", 80), ("10.244.3.2", 80)])
    change = update(snap, [a2, b])
    gone, added = sep_chain(a, "10.244.2.2", 80), sep_chain(a2, "10.244.3.2", 80)
    assert change.write == (("nat", svc_chain(a2)), ("nat", added))  # the kept endpoint's chain is untouched
    assert change.drop == (("nat", gone),)
    text = change_text(change)
    assert "NBK-SERVICES" not in text and "NBK-NODEPORTS" not in text and "*filter" not in text
    assert text == restore_text(change.new.tables, snap.tables)
    # Nothing changed (equal rules, even as new objects): nothing to write, the same tables.
    again = update(change.new, [_rule([("10.244.1.2", 80), ("10.244.3.2", 80)]), b])
    assert not again and again.new.tables is change.new.tables
    # Losing the last endpoint moves the service to the filter table's REJECTs: dispatch rewritten.
    empty = update(change.new, [_rule([]), b])
    assert ("filter", "NBK-SERVICES") in empty.write and ("nat", "NBK-SERVICES") in empty.write
    assert svc_chain(a) not in empty.new.tables["nat"]


def test_fast_syncs_delete_nothing_mean_the_same_and_compact_to_a_full_render() -> None:
    rng = random.Random(11)
    current: dict[int, ServicePortRule] = {}
    proxy = _ModelProxy()
    proxy.sync([])
    fast = 0
    for step in range(600):
        rules = _endpoint_step(rng, current) if rng.random() < 0.8 and current else _step(rng, current)
        before = proxy.uncompacted
        had = {c for chains in proxy.kernel.values() for c in chains}
        proxy.sync(rules)
        full = _plain(render_tables(rules, node_ips=["10.240.0.2"]))
        if proxy.uncompacted > before:
            fast += 1
            last = proxy.texts[-1] if proxy.texts else ""
            assert "-X " not in last and "-F " not in last and "-D " not in last, last
            declared = {line[1:].split()[0] for line in last.splitlines() if line.startswith(":")}
            assert not declared & had, last  # declaring an existing chain would flush it
        assert _live(proxy.kernel) == _live(full), step  # packets see what a full render says
        if rng.random() < 0.05:
            proxy.compact()
            assert proxy.kernel == full and proxy.uncompacted == 0, step
    assert fast > 200  # the fast path was taken most of the time
    proxy.compact()
    assert proxy.kernel == _plain(
        render_tables(sorted(current.values(), key=lambda r: r.id), node_ips=["10.240.0.2"])
    )


def test_a_fast_sync_declares_only_new_chains() -> None:
    proxy = _ModelProxy()
    a = _rule([("10.244.1.2", 80), ("10.244.2.2", 80)])
    proxy.sync([a])
    existing = {c for chains in proxy.kernel.values() for c in chains}
    proxy.sync([_rule([("10.244.1.2", 80), ("10.244.3.2", 80)])])
    text = proxy.texts[-1]
    declared = {line[1:].split()[0] for line in text.splitlines() if line.startswith(":")}
    assert declared == {sep_chain(a, "10.244.3.2", 80)} and not declared & existing
    assert f"-I {svc_chain(a)} 1 -j {sep_chain(a, '10.244.3.2', 80)}" in text
    assert proxy.uncompacted == 1 and sep_chain(a, "10.244.2.2", 80) in proxy.kernel["nat"]  # left for later
    assert proxy.compact() and not proxy.compact()
    assert sep_chain(a, "10.244.2.2", 80) not in proxy.kernel["nat"]


# --- real traffic (root) --------------------------------------------------------------------------

_why = lab_available()
root = pytest.mark.skipif(_why is not None, reason=_why or "")
NODES = {"pxt1": 1, "pxt2": 2, "pxt3": 3}


def _nat(netns: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", netns, "iptables-save"], capture_output=True, text=True
    ).stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PodLab, list[IptablesProxy]]]:
    if _why:
        pytest.skip(_why)
    lab = PodLab(tmp_path_factory.mktemp("pxlab"))
    proxies: list[IptablesProxy] = []
    try:
        for name, index in NODES.items():
            net = lab.add_node(name, index)
            proxies.append(IptablesProxy(net.netns, [net.node_ip]))
        for i in range(5):  # the article's 5 replicas over 3 nodes
            lab.add_pod(list(NODES)[i % 3], f"pxweb{i}")
        lab.add_pod("pxt1", "pxclient")
        yield lab, proxies
    finally:
        for proxy in proxies:
            proxy.cleanup()
        lab.close()


def _sync_all(lab: PodLab, proxies: list[IptablesProxy], pods: list[str], **kw) -> ServicePortRule:
    rule = _rule([(lab.pods[p].ip, 80) for p in pods], **kw)
    for proxy in proxies:
        proxy.sync([rule])
    return rule


WEB = [f"pxweb{i}" for i in range(5)]


@root
@pytest.mark.timeout(60)
def test_cluster_ip_from_a_pod_and_node_port_from_the_host(cluster) -> None:
    lab, proxies = cluster
    _sync_all(lab, proxies, WEB)
    assert all(p.restores >= 1 for p in proxies)
    restores = [p.restores for p in proxies]
    _sync_all(lab, proxies, WEB)  # unchanged: no restore at all
    assert [p.restores for p in proxies] == restores
    client = lab.pods["pxclient"]
    assert lab.fetch(client.netns, "http://10.96.0.10:8000/") in WEB
    # ClusterIP from a pod is not NATed on the source side.
    assert lab.fetch(client.netns, "http://10.96.0.10:8000/cgi-bin/ip") == client.ip
    # From a node's own namespace (its agent, probes): masqueraded, answered.
    assert lab.fetch(lab.nodes["pxt2"].netns, "http://10.96.0.10:8000/") in WEB
    hits: collections.Counter[str] = collections.Counter()
    node_ips = [net.node_ip for net in lab.nodes.values()]
    for i in range(200):
        with urllib.request.urlopen(f"http://{node_ips[i % 3]}:30001/", timeout=3) as resp:
            hits[resp.read().decode().strip()] += 1
    assert set(hits) == set(WEB), hits
    assert max(hits.values()) <= 2 * 200 / len(WEB), hits


@root
@pytest.mark.timeout(60)
def test_endpoint_change_session_affinity_and_no_endpoints(cluster) -> None:
    lab, proxies = cluster
    client = lab.pods["pxclient"]
    _sync_all(lab, proxies, ["pxweb3"])
    assert {lab.fetch(client.netns, "http://10.96.0.10:8000/") for _ in range(5)} == {"pxweb3"}
    _sync_all(lab, proxies, ["pxweb1", "pxweb2"], affinity=True)
    seen = {lab.fetch(client.netns, "http://10.96.0.10:8000/") for _ in range(8)}
    assert len(seen) == 1 and seen <= {"pxweb1", "pxweb2"}
    _sync_all(lab, proxies, [])
    with pytest.raises(Exception, match="refused"):
        lab.fetch(client.netns, "http://10.96.0.10:8000/")
    with pytest.raises(Exception, match="refused"):
        lab.fetch(None, f"http://{lab.nodes['pxt2'].node_ip}:30001/")


@root
@pytest.mark.timeout(60)
def test_restart_adopts_and_cleanup_removes_only_our_chains(cluster) -> None:
    lab, proxies = cluster
    ns = lab.nodes["pxt3"].netns
    # A rule of someone else in the same table must survive everything we do.
    subprocess.run(["ip", "netns", "exec", ns, "iptables", "-t", "nat", "-N", "OTHER"], check=True)
    try:
        _sync_all(lab, proxies, WEB)
        fresh = IptablesProxy(ns, [lab.nodes["pxt3"].node_ip])  # as after an agent restart
        fresh.sync([_rule([(lab.pods["pxweb0"].ip, 80)])])
        saved = _nat(ns)
        assert saved.count(":NBK-SEP-") == 1 and saved.count("-j NBK-SERVICES") == 5  # no duplicate jumps
        assert lab.fetch(lab.pods["pxclient"].netns, f"http://{lab.nodes['pxt3'].node_ip}:30001/") == "pxweb0"
        fresh.cleanup()
        saved = _nat(ns)
        assert "NBK-" not in saved and ":OTHER" in saved
        # The old proxy object never saw that: its next (incremental) sync fails, rescans and rewrites.
        assert proxies[2].sync([_rule([(lab.pods["pxweb2"].ip, 80)])])
        assert lab.fetch(lab.pods["pxclient"].netns, f"http://{lab.nodes['pxt3'].node_ip}:30001/") == "pxweb2"
        assert _nat(ns).count("-j NBK-SERVICES") == 5
    finally:
        subprocess.run(["ip", "netns", "exec", ns, "iptables", "-t", "nat", "-X", "OTHER"], check=False)


@root
@pytest.mark.timeout(60)
def test_hairpin_same_node_and_node_port_from_a_pod(cluster) -> None:
    lab, proxies = cluster
    me = lab.pods["pxweb0"]
    _sync_all(lab, proxies, ["pxweb0"])
    # A pod reaching itself through its own service (hairpin): masqueraded to its gateway.
    assert lab.fetch(me.netns, "http://10.96.0.10:8000/cgi-bin/ip") == lab.nodes[me.node].gateway
    # Same node, other pod, through the ClusterIP: no NAT of the source (br_netfilter un-DNATs replies).
    neighbour = lab.pods["pxclient"]
    assert lab.pods["pxclient"].node == me.node
    assert lab.fetch(neighbour.netns, "http://10.96.0.10:8000/cgi-bin/ip") == neighbour.ip
    # A pod on another node using some node's NodePort: answered, source masqueraded to that node.
    far = lab.pods["pxweb1"]
    assert far.node != me.node
    for net in lab.nodes.values():
        assert lab.fetch(far.netns, f"http://{net.node_ip}:30001/") == "pxweb0"


def test_cleanup_of_a_gone_namespace_is_a_no_op() -> None:
    IptablesProxy("nbk-never-created-here").cleanup()


# --- incremental sync against the kernel (root; scratch namespaces, no links, no traffic) ---------


def _netns_ok() -> str | None:
    if os.geteuid() != 0 or not shutil.which("iptables-restore") or not shutil.which("ip"):
        return "needs root, ip and iptables-restore"
    return None


def _ours(netns: str) -> dict[str, dict[str, list[str]]]:
    """Our chains and our jumps in iptables-save of `netns`: table -> chain -> rules."""
    saved = subprocess.run(
        ["ip", "netns", "exec", netns, "iptables-save"], capture_output=True, text=True, check=True
    ).stdout
    out: dict[str, dict[str, list[str]]] = {}
    table = ""
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":NBK-"):
            out.setdefault(table, {}).setdefault(line[1:].split()[0], [])
        elif line.startswith("-A ") and "NBK-" in line:
            out.setdefault(table, {}).setdefault(line.split()[1], []).append(line)
    return out


@pytest.fixture
def scratch() -> Iterator[tuple[str, str]]:
    why = _netns_ok()
    if why:
        pytest.skip(why)
    names = (f"nbk-pxy-inc-{os.getpid()}", f"nbk-pxy-full-{os.getpid()}")
    for name in names:
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield names
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.timeout(120)
def test_incremental_syncs_leave_the_kernel_as_a_full_sync_does(scratch: tuple[str, str]) -> None:
    inc_ns, full_ns = scratch
    rng = random.Random(7)
    current: dict[int, ServicePortRule] = {}
    proxy = IptablesProxy(inc_ns, ["10.240.0.2"])
    home = os.readlink("/proc/thread-self/ns/net")
    fast = 0
    for step in range(60):
        rules = _endpoint_step(rng, current) if rng.random() < 0.7 and current else _step(rng, current)
        before = proxy.uncompacted
        proxy.sync(rules)
        fast += proxy.uncompacted > before
        if step % 10 == 9:
            # The proxy's idea of the kernel (dead lines and stale chains included) is the kernel's:
            # the same chains, each with as many rules (iptables-save spells some matches its own way).
            model = {(t, c): len(r) for t, chains in (proxy._kernel or {}).items() for c, r in chains.items()}
            saved = {(t, c): len(r) for t, chains in _ours(inc_ns).items() for c, r in chains.items()}
            assert {k: n for k, n in saved.items() if k[1].startswith("NBK-")} == model, step
            proxy.compact()
            # A fresh proxy writes everything (and adopts what the last fresh one left).
            IptablesProxy(full_ns, ["10.240.0.2"]).sync(rules)
            assert _ours(inc_ns) == _ours(full_ns), step
    assert fast >= 10
    assert os.readlink("/proc/thread-self/ns/net") == home  # the sync thread came back home
    restores = proxy.restores
    proxy.sync(sorted(current.values(), key=lambda r: r.id))
    assert proxy.restores == restores  # nothing changed: no restore
    proxy.cleanup()
    assert _ours(inc_ns) == {}


@pytest.fixture
def loopback_ns() -> Iterator[str]:
    why = _netns_ok()
    if why:
        pytest.skip(why)
    name = f"nbk-pxy-lo-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", "10.96.0.10/32", "dev", "lo"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.timeout(60)
def test_after_fast_syncs_connections_reach_only_the_current_endpoints(loopback_ns: str) -> None:
    """Real packets, all inside one scratch namespace: the ClusterIP sits on its loopback and the
    "pods" are listeners on 127.0.0.k; the dead lines a fast sync leaves must never be reached."""
    import socket
    import threading

    from nbkube.node.netns import entered

    listeners: list[socket.socket] = []

    def serve(k: int) -> None:
        with entered(loopback_ns):  # a socket belongs to the namespace it was made in
            sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((f"127.0.0.{k}", 80))
        sock.listen(16)
        listeners.append(sock)

        def answer() -> None:
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    return
                conn.sendall(f"b{k}".encode())
                conn.close()

        threading.Thread(target=answer, daemon=True).start()

    def fetch() -> str:
        with entered(loopback_ns):
            conn = socket.create_connection(("10.96.0.10", 8000), timeout=3)
        with conn:
            return conn.recv(16).decode()

    for k in range(2, 8):
        serve(k)
    proxy = IptablesProxy(loopback_ns, [], cluster_cidr="")
    try:
        for ks in ([2, 3], [4], [5, 6], [7], [2]):  # the last one reuses an uncompacted chain
            proxy.sync([_rule([(f"127.0.0.{k}", 80) for k in ks], node_port=None)])
            assert {fetch() for _ in range(20)} == {f"b{k}" for k in ks}, ks
        assert proxy.uncompacted == 4  # all but the first were fast syncs
        assert proxy.compact() and {fetch() for _ in range(5)} == {"b2"}
    finally:
        proxy.cleanup()
        for sock in listeners:
            sock.close()
