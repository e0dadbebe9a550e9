"""The iptables form of one node's NetworkPolicy table: our filter chains, as text. Pure.

Called by `IptablesFirewall.sync` with what `policy.compute` found for the node's pods. Why it
looks like this:
- one dispatch chain, NBK-FW-FORWARD, jumped to from the filter FORWARD chain (pod-to-pod traffic
  on one node crosses it because the bridge is netfiltered; traffic to or from another node is
  routed through it). Replies of allowed connections (conntrack ESTABLISHED,RELATED) return at
  once; a packet from an egress-isolated local pod goes through that pod's egress chain, one to an
  ingress-isolated local pod through its ingress chain. Each node checks only its own pods, so a
  connection between nodes is checked for egress where it leaves and for ingress where it arrives.
  The node's own connections to its pods (probes, the kubelet) leave through OUTPUT, never
  FORWARD, and stay allowed as with Kubernetes CNIs;
- a pod chain never ACCEPTs: it clears a mark bit, runs the chains of its rules (each sets the bit
  when it matches), RETURNs when the bit is set and DROPs otherwise. What it lets through goes on
  through FORWARD as before (the proxy's rules, the node network's accepts), so enforcing a policy
  can only ever take traffic away;
- chains are named by a hash of their content, so pods and policies with the same rules share
  one chain (1,000 pods under 100 policies make a few hundred chains, not 100,000 rules), and a
  sync rewrites only the chains whose content is new;
- every name starts with `NBK-FW-`: only those chains and the one jump are ever written.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence

from nbkube.node.firewall.policy import Peer, PodFirewall, PortMatch, Rule

__all__ = ["CHAIN_PREFIX", "DISPATCH", "JUMP", "MARK", "render"]

CHAIN_PREFIX = "NBK-FW-"
DISPATCH = "NBK-FW-FORWARD"
MARK = "0x20000"  # the proxy uses 0x4000
_SET = f"-j MARK --set-xmark {MARK}/{MARK}"
# The only rule outside our chains, as iptables-save prints it (so one look at iptables-save tells
# whether it is there); inserted first in FORWARD, where nothing ahead of it can ACCEPT past it.
JUMP = ("filter", "FORWARD", f'-m comment --comment "nbkube network policy" -j {DISPATCH}')

Chains = dict[str, list[str]]


def _hash(*parts: str) -> str:
    # 16 base32 characters: "NBK-FW-R-" + hash stays within iptables' 28-character chain names.
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return base64.b32encode(digest).decode()[:16]


def _name(kind: str, lines: Iterable[str]) -> str:
    return f"{CHAIN_PREFIX}{kind}-{_hash(kind, *lines)}"


def _port_lines(ports: Iterable[PortMatch]) -> list[str]:
    out = []
    for p in ports:
        proto = f"-p {p.protocol.lower()}"
        if p.port is None:
            out.append(f"{proto} {_SET}")
        elif p.end_port is not None and p.end_port != p.port:
            out.append(f"{proto} -m {p.protocol.lower()} --dport {p.port}:{p.end_port} {_SET}")
        else:
            out.append(f"{proto} -m {p.protocol.lower()} --dport {p.port} {_SET}")
    return out


def _add(chains: Chains, kind: str, body: list[str]) -> str:
    """Add a content-named chain (body lines without the "-A NAME" head); its name."""
    name = _name(kind, body)
    chains.setdefault(name, [f"-A {name} {line}" for line in body])
    return name


def _rule_chain(chains: Chains, rule: Rule, side: str) -> str:
    """The chain that sets the mark for packets `rule` allows; `side` is -s (ingress: the peer is
    the source) or -d (egress: the peer is the destination)."""
    if rule.ports is None:
        target = _SET
    elif rule.peers is None:
        return _add(chains, "R", _port_lines(rule.ports))
    else:
        target = f"-j {_add(chains, 'T', _port_lines(rule.ports))}"
    body: list[str] = []
    for peer in rule.peers or ():
        if ":" in peer.cidr:
            continue  # an IPv6 block: iptables (IPv4) could not load it, and no pod packet matches it
        body.append(f"{side} {peer.cidr} {_peer_target(chains, peer, side, target)}")
    return _add(chains, "R", body if rule.peers is not None else [target])


def _peer_target(chains: Chains, peer: Peer, side: str, target: str) -> str:
    if not peer.excepts:
        return target
    body = [f"{side} {e} -j RETURN" for e in peer.excepts] + [target]
    return f"-j {_add(chains, 'X', body)}"


def _pod_chain(chains: Chains, kind: str, rules: tuple[Rule, ...], side: str, direction: str) -> str:
    drop = f'-m comment --comment "nbkube network policy: {direction} not allowed" -j DROP'
    if not rules:
        return _add(chains, kind, [drop])
    body = [f"-j MARK --set-xmark 0x0/{MARK}"]
    body += [f"-j {_rule_chain(chains, r, side)}" for r in rules]
    body += [f"-m mark --mark {MARK}/{MARK} -j RETURN", drop]
    return _add(chains, kind, body)


def render(pods: Mapping[str, PodFirewall]) -> dict[str, dict[str, Sequence[str]]]:
    """{"filter": {chain: rule lines}} enforcing `pods` (as `policy.compute` returns them). Pure."""
    chains: Chains = {}
    # Pods under the same policies have equal rule tuples: each distinct one is rendered once.
    memo: dict[tuple[str, tuple[Rule, ...]], str] = {}
    dispatch = [f"-A {DISPATCH} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"]
    allow_all = (Rule(None, None),)
    for ip, fw in pods.items():
        # A pod some policy allows everything needs no chain: it is as if not isolated.
        if fw.egress is not None and fw.egress != allow_all:
            chain = memo.get(("E", fw.egress))
            if chain is None:
                chain = memo[("E", fw.egress)] = _pod_chain(chains, "E", fw.egress, "-d", "egress")
            dispatch.append(f'-A {DISPATCH} -s {ip}/32 -m comment --comment "{fw.key} egress" -j {chain}')
        if fw.ingress is not None and fw.ingress != allow_all:
            chain = memo.get(("I", fw.ingress))
            if chain is None:
                chain = memo[("I", fw.ingress)] = _pod_chain(chains, "I", fw.ingress, "-s", "ingress")
            dispatch.append(f'-A {DISPATCH} -d {ip}/32 -m comment --comment "{fw.key} ingress" -j {chain}')
    filt: dict[str, Sequence[str]] = {DISPATCH: dispatch, **chains}
    return {"filter": filt}
