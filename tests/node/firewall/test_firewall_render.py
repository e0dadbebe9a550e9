"""The iptables text of a NetworkPolicy table (nbkube.node.firewall.render), and the firewall that
writes it, with `run_iptables` replaced by a model kernel (no root)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from nbkube.node.firewall import iptables as fw_iptables
from nbkube.node.firewall.iptables import IptablesFirewall
from nbkube.node.firewall.policy import Peer, PodFirewall, PortMatch, Rule
from nbkube.node.firewall.render import DISPATCH, JUMP, MARK, render

ESTABLISHED = f"-A {DISPATCH} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"


def _chain(tables: dict, prefix: str) -> list[str]:
    return [c for c in tables["filter"] if c.startswith(prefix)]


def test_no_isolated_pod_leaves_only_the_reply_rule() -> None:
    assert render({}) == {"filter": {DISPATCH: [ESTABLISHED]}}


def test_deny_all_ingress_is_one_drop_chain_shared_by_pods() -> None:
    out = render(
        {
            "10.244.1.2": PodFirewall("b/b1", "10.244.1.2", (), None),
            "10.244.1.3": PodFirewall("b/b2", "10.244.1.3", (), None),
        }
    )
    (deny,) = _chain(out, "NBK-FW-I-")
    assert out["filter"][deny] == [
        f'-A {deny} -m comment --comment "nbkube network policy: ingress not allowed" -j DROP'
    ]
    assert out["filter"][DISPATCH] == [
        ESTABLISHED,
        f'-A {DISPATCH} -d 10.244.1.2/32 -m comment --comment "b/b1 ingress" -j {deny}',
        f'-A {DISPATCH} -d 10.244.1.3/32 -m comment --comment "b/b2 ingress" -j {deny}',
    ]


def test_allow_all_needs_no_chain() -> None:
    out = render({"10.244.1.2": PodFirewall("b/b1", "10.244.1.2", (Rule(None, None),), (Rule(None, None),))})
    assert out == {"filter": {DISPATCH: [ESTABLISHED]}}


def test_peers_ports_and_excepts() -> None:
    rule = Rule(
        (Peer("10.244.1.5/32"), Peer("172.17.0.0/16", ("172.17.1.0/24",))),
        (PortMatch("TCP", 6379), PortMatch("TCP", 32000, 32768), PortMatch("SCTP")),
    )
    out = render({"10.244.1.2": PodFirewall("a/db", "10.244.1.2", (rule,), ())})["filter"]
    (ingress,) = [c for c in out if c.startswith("NBK-FW-I-")]
    (egress,) = [c for c in out if c.startswith("NBK-FW-E-")]
    (rule_chain,) = [c for c in out if c.startswith("NBK-FW-R-")]
    (ports,) = [c for c in out if c.startswith("NBK-FW-T-")]
    (excepts,) = [c for c in out if c.startswith("NBK-FW-X-")]
    assert out[ingress] == [
        f"-A {ingress} -j MARK --set-xmark 0x0/{MARK}",
        f"-A {ingress} -j {rule_chain}",
        f"-A {ingress} -m mark --mark {MARK}/{MARK} -j RETURN",
        f'-A {ingress} -m comment --comment "nbkube network policy: ingress not allowed" -j DROP',
    ]
    assert out[rule_chain] == [
        f"-A {rule_chain} -s 10.244.1.5/32 -j {ports}",
        f"-A {rule_chain} -s 172.17.0.0/16 -j {excepts}",
    ]
    assert out[excepts] == [f"-A {excepts} -s 172.17.1.0/24 -j RETURN", f"-A {excepts} -j {ports}"]
    assert out[ports] == [
        f"-A {ports} -p tcp -m tcp --dport 6379 -j MARK --set-xmark {MARK}/{MARK}",
        f"-A {ports} -p tcp -m tcp --dport 32000:32768 -j MARK --set-xmark {MARK}/{MARK}",
        f"-A {ports} -p sctp -j MARK --set-xmark {MARK}/{MARK}",
    ]
    assert out[DISPATCH][1:] == [
        f'-A {DISPATCH} -s 10.244.1.2/32 -m comment --comment "a/db egress" -j {egress}',
        f'-A {DISPATCH} -d 10.244.1.2/32 -m comment --comment "a/db ingress" -j {ingress}',
    ]


def test_egress_rules_match_the_destination() -> None:
    rule = Rule((Peer("10.0.0.0/24"),), None)
    out = render({"10.244.1.2": PodFirewall("a/c", "10.244.1.2", None, (rule,))})["filter"]
    (rule_chain,) = [c for c in out if c.startswith("NBK-FW-R-")]
    assert out[rule_chain] == [f"-A {rule_chain} -d 10.0.0.0/24 -j MARK --set-xmark {MARK}/{MARK}"]


def test_ports_without_peers_are_the_rule_chain_itself() -> None:
    rule = Rule(None, (PortMatch("UDP", 53),))
    out = render({"10.244.1.2": PodFirewall("a/c", "10.244.1.2", (rule,), None)})["filter"]
    (rule_chain,) = [c for c in out if c.startswith("NBK-FW-R-")]
    assert out[rule_chain] == [f"-A {rule_chain} -p udp -m udp --dport 53 -j MARK --set-xmark {MARK}/{MARK}"]


def test_chain_names_fit_iptables_and_only_ours() -> None:
    rule = Rule((Peer("10.244.0.0/16", ("10.244.9.0/24",)),), (PortMatch("TCP", 80),))
    out = render(
        {f"10.244.1.{i}": PodFirewall(f"a/p{i}", f"10.244.1.{i}", (rule,), (rule,)) for i in range(2, 9)}
    )
    assert all(c.startswith("NBK-FW-") and len(c) <= 28 for c in out["filter"])
    for chain, lines in out["filter"].items():
        assert all(line.startswith(f"-A {chain} ") for line in lines)
        for target in re.findall(r"-j (NBK-FW-\S+)", "\n".join(lines)):
            assert target in out["filter"]


# --- the firewall against a model kernel ----------------------------------------------------------


class ModelKernel:
    """Just enough of iptables-save / iptables-restore --noflush for our filter chains."""

    def __init__(self) -> None:
        self.chains: dict[str, list[str]] = {"FORWARD": ["-A FORWARD -j SOMEONE-ELSE"], "SOMEONE-ELSE": []}
        self.texts: list[str] = []

    def __call__(self, netns: str | None, args: list[str], input: str | None = None) -> str:
        if args[0] == "iptables-save":
            out = ["*filter"] + [f":{c} - [0:0]" for c in self.chains]
            out += [line for lines in self.chains.values() for line in lines] + ["COMMIT"]
            return "\n".join(out) + "\n"
        assert args[:3] == ["iptables-restore", "-w", "--noflush"] and input is not None
        self.texts.append(input)
        for line in input.splitlines():
            if line.startswith("*"):
                assert line == "*filter", "the firewall only ever touches the filter table"
            elif line.startswith(":"):
                self.chains[line[1:].split()[0]] = []
            elif line.startswith("-A "):
                self.chains[line.split()[1]].append(line)
            elif line.startswith("-I "):
                _, chain, pos, rest = line.split(" ", 3)
                self.chains[chain].insert(int(pos) - 1, f"-A {chain} {rest}")
            elif line.startswith("-D "):
                _, chain, rest = line.split(" ", 2)
                self.chains[chain].remove(f"-A {chain} {rest}")
            elif line.startswith("-X "):
                chain = line.split()[1]
                assert not self.chains.pop(chain), "deleting a chain that still has rules"
        return ""


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> ModelKernel:
    model = ModelKernel()
    monkeypatch.setattr(fw_iptables, "run_iptables", model)
    monkeypatch.setattr(IptablesFirewall, "_bridge_netfilter", lambda self: None)
    return model


def _ours(kernel: ModelKernel) -> dict[str, list[str]]:
    return {c: lines for c, lines in kernel.chains.items() if c.startswith("NBK-FW-")}


def test_sync_writes_our_chains_and_one_jump_then_only_what_changed(kernel: ModelKernel) -> None:
    fw = IptablesFirewall("nbk-x")
    deny = {"10.244.1.2": PodFirewall("b/b1", "10.244.1.2", (), None)}
    assert fw.sync(deny)
    assert kernel.chains["FORWARD"] == [f"-A FORWARD {JUMP[2]}", "-A FORWARD -j SOMEONE-ELSE"]
    assert _ours(kernel) == render(deny)["filter"]
    assert not fw.sync(deny) and fw.restores == 1  # nothing changed: no restore at all
    allow = {
        "10.244.1.2": PodFirewall("b/b1", "10.244.1.2", (Rule((Peer("10.244.1.3/32"),), None),), None),
    }
    assert fw.sync(allow)
    assert _ours(kernel) == render(allow)["filter"]  # the deny chain is gone
    declared = {line[1:].split()[0] for line in kernel.texts[-1].splitlines() if line.startswith(":")}
    assert DISPATCH in declared and kernel.chains["FORWARD"].count(f"-A FORWARD {JUMP[2]}") == 1


def test_a_restart_adopts_what_an_earlier_run_left(kernel: ModelKernel) -> None:
    IptablesFirewall("nbk-x").sync({"10.244.1.2": PodFirewall("b/b1", "10.244.1.2", (), None)})
    fresh = IptablesFirewall("nbk-x")
    fresh.sync({})
    assert _ours(kernel) == {DISPATCH: [ESTABLISHED]}
    assert kernel.chains["FORWARD"].count(f"-A FORWARD {JUMP[2]}") == 1


def test_cleanup_removes_everything_of_ours_and_nothing_else(kernel: ModelKernel) -> None:
    fw = IptablesFirewall(None)  # the host's namespace (a joined node): always there
    fw.sync({"10.244.1.2": PodFirewall("b/b1", "10.244.1.2", (), ())})
    fw.cleanup()
    assert _ours(kernel) == {}
    assert kernel.chains == {"FORWARD": ["-A FORWARD -j SOMEONE-ELSE"], "SOMEONE-ELSE": []}


def test_a_failed_restore_is_followed_by_a_full_rewrite(kernel: ModelKernel, monkeypatch: Any) -> None:
    fw = IptablesFirewall("nbk-x")
    fw.sync({})
    kernel.chains.pop(DISPATCH)  # someone deleted our chain under us
    kernel.chains["FORWARD"].remove(f"-A FORWARD {JUMP[2]}")
    real = kernel.__call__
    calls = {"n": 0}

    def flaky(netns: str | None, args: list[str], input: str | None = None) -> str:
        if args[0] == "iptables-restore" and calls["n"] == 0:
            calls["n"] += 1
            raise fw_iptables.IptablesError("Chain NBK-FW-FORWARD does not exist")
        return real(netns, args, input)

    monkeypatch.setattr(fw_iptables, "run_iptables", flaky)
    table = {"10.244.1.2": PodFirewall("b/b1", "10.244.1.2", (), None)}
    assert fw.sync(table)
    assert _ours(kernel) == render(table)["filter"]
    assert kernel.chains["FORWARD"][0] == f"-A FORWARD {JUMP[2]}"


def test_check_puts_our_jump_back_in_front(kernel: ModelKernel) -> None:
    fw = IptablesFirewall(None)
    table = {"10.244.1.2": PodFirewall("b/b1", "10.244.1.2", (), None)}
    fw.sync(table)
    assert not fw.check()  # as we left it
    # the proxy restarting inserts its own jumps first; one of its chains ACCEPTs NodePort traffic
    kernel.chains["FORWARD"].insert(0, "-A FORWARD -j NBK-FORWARD")
    assert fw.check()
    assert kernel.chains["FORWARD"] == [
        f"-A FORWARD {JUMP[2]}",
        "-A FORWARD -j NBK-FORWARD",
        "-A FORWARD -j SOMEONE-ELSE",
    ]
    assert _ours(kernel) == render(table)["filter"]
    kernel.chains.pop(next(c for c in kernel.chains if c.startswith("NBK-FW-I-")))  # deleted under us
    assert fw.check() and _ours(kernel) == render(table)["filter"]
    assert not fw.check()


def test_an_ipv6_block_is_left_out_of_the_ipv4_rules() -> None:
    rule = Rule((Peer("2001:db8::/64"), Peer("10.0.0.0/8")), None)
    only_v6 = Rule((Peer("2001:db8::/64"),), None)
    out = render({"10.244.1.2": PodFirewall("a/c", "10.244.1.2", (rule, only_v6), None)})["filter"]
    text = "\n".join(line for lines in out.values() for line in lines)
    assert "2001:db8" not in text and "-s 10.0.0.0/8" in text
    empty = [c for c, lines in out.items() if c.startswith("NBK-FW-R-") and not lines]
    assert len(empty) == 1  # the IPv6-only rule matches nothing: that pod gets nothing from it
