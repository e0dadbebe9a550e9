"""NetworkPolicy semantics as a pure function: what each pod of one node may receive and send.

Called by the firewall runner on every change of Pods, Namespaces or NetworkPolicies; its result is
what a `Firewall` is told to enforce. Nothing here touches the kernel, so the semantics are tested
exhaustively without root (tests/node/firewall/test_firewall_policy.py).

The rules, as in Kubernetes (networking.k8s.io/v1):
- a pod is isolated for ingress (egress) when any policy of its namespace selects it and lists
  `Ingress` (`Egress`) in its policyTypes (defaulted at admission: Ingress always, Egress when
  egress rules are present); a pod no policy isolates is not filtered at all;
- an isolated pod accepts (sends) a connection when ANY rule of ANY selecting policy allows it:
  policies only add; an empty rule list allows nothing, an empty rule (`{}`) everything;
- a peer is an `ipBlock` (cidr minus `except`) or pods: `podSelector` alone picks pods of the
  policy's namespace, `namespaceSelector` alone every pod of the namespaces it picks, both together
  the pods matching the podSelector in those namespaces (AND);
- ports: protocol + number (+ `endPort`, a range), or a named container port, resolved against
  the destination pod (for ingress the selected pod itself, for egress each peer pod); a name no
  destination has allows nothing.
Replies and the node's own traffic to its pods are the firewall's business (conntrack, the chain
it hooks), not this module's.

The cluster DNS as a member of kube-system. Upstream, kube-dns is served by CoreDNS pods in
kube-system (labelled `k8s-app: kube-dns`, listening on 53), and the usual "allow DNS" egress rule
names them: `namespaceSelector` kube-system (and/or `podSelector` k8s-app=kube-dns) with UDP/TCP 53,
or just the ports with no `to`. nbkube's cluster DNS of Docker nodes is no pod: it listens on the
host bridge on a free port, which kube-dns's Endpoints name, and the proxy DNATs 10.96.0.10:53
there before the firewall sees the packet. So each address of kube-system/kube-dns's
EndpointSlices is a `StandIn`: for egress rules it counts as a pod of kube-system with the
slices' labels (those of the Service: `k8s-app: kube-dns`) that serves port 53 (and the named
ports `dns`, `dns-tcp`) on the Endpoints' port. A rule that reaches it (by selectors, an ipBlock
holding its address, or no `to` at all) and allows 53 (or a range or name covering it, or any
port) becomes exactly "that address, that port, that protocol": never the host's other ports.
Chosen over asking tenants for an ipBlock of the DNS server's address because the policy then
reads as upstream's, survives the server moving to another port or address, and opens nothing
else on the host. A StandIn is never a source (the DNS server only answers, and replies pass by
conntrack) and never a peer of named-port rules for pods.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbkube.api.defaults import NAMESPACE_NAME_LABEL
from nbkube.api.discovery import LABEL_MANAGED_BY, LABEL_SERVICE_NAME
from nbkube.api.meta import Obj
from nbkube.api.selectors import EQUALS, Selector, selector_from_label_selector

__all__ = [
    "DNS_NAMESPACE",
    "DNS_PORT",
    "DNS_SERVICE",
    "Peer",
    "PodFirewall",
    "PortMatch",
    "Rule",
    "StandIn",
    "compute",
    "dns_stand_ins",
    "namespace_labels",
    "policy_types",
]

# The cluster DNS Service (written by nbkube/controlplane/dns/component.py) and the port its
# upstream pods serve; the node layer names them itself, as it never imports the control plane.
DNS_NAMESPACE = "kube-system"
DNS_SERVICE = "kube-dns"
DNS_PORT = 53


@dataclass(frozen=True, order=True)
class Peer:
    """An address block (a pod is its IP/32) minus the `excepts` inside it."""

    cidr: str
    excepts: tuple[str, ...] = ()
    _hash: int = field(init=False, repr=False, compare=False)  # hashed once: peers go in sets often

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.cidr, self.excepts)))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, order=True)
class PortMatch:
    """A destination port (or range `port`..`end_port`) of one protocol; `port` None: any port."""

    protocol: str
    port: int | None = None
    end_port: int | None = None


@dataclass(frozen=True)
class Rule:
    """One allowance: from (to) any of `peers` on any of `ports`; None is "any" for either."""

    peers: tuple[Peer, ...] | None
    ports: tuple[PortMatch, ...] | None
    # A rule may hold thousands of peers and is shared by every pod its policy selects: hashed
    # once, not each time a pod's rules are deduplicated or rendered.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.peers, self.ports)))

    def __hash__(self) -> int:
        return self._hash

    def allows_all(self) -> bool:
        return self.peers is None and self.ports is None


@dataclass(frozen=True)
class PodFirewall:
    """What one pod may receive (`ingress`) and send (`egress`): None when not isolated that way,
    else the rules of which any allows (an empty tuple: nothing is allowed)."""

    key: str  # namespace/name, for messages and comments
    ip: str
    ingress: tuple[Rule, ...] | None = None
    egress: tuple[Rule, ...] | None = None


@dataclass(frozen=True)
class StandIn:
    """An address serving in place of pods of `namespace` (see the module docstring): `served`
    maps a (protocol, pod port) to the port it really listens on, `named` a (protocol, port name)."""

    namespace: str
    ip: str
    labels: Mapping[str, str]
    served: Mapping[tuple[str, int], int]
    named: Mapping[tuple[str, str], int]

    def translate(self, ports: Sequence[Mapping[str, Any]]) -> tuple[PortMatch, ...]:
        """The real ports a rule's `ports` (empty: any) allow on this address."""
        out: set[PortMatch] = set()
        for (proto, pod_port), real in self.served.items():
            for p in ports or ({},):
                want = str(p.get("protocol") or "TCP") if p else proto
                port = p.get("port")
                if want != proto:
                    continue
                if isinstance(port, str):
                    if (proto, port) in self.named:
                        out.add(PortMatch(proto, self.named[(proto, port)]))
                    continue
                end = p.get("endPort")
                if port is None or int(port) <= pod_port <= int(end if end is not None else port):
                    out.add(PortMatch(proto, real))
        return tuple(sorted(out))


def dns_stand_ins(slices: Iterable[Obj]) -> list[StandIn]:
    """The StandIns of the cluster DNS: each address of kube-system/kube-dns's EndpointSlices
    (others in `slices` are ignored), serving DNS_PORT on the slice's port of each protocol."""
    out: list[StandIn] = []
    for sl in slices:
        meta = sl.get("metadata") or {}
        labels = dict(meta.get("labels") or {})
        if meta.get("namespace") != DNS_NAMESPACE or labels.get(LABEL_SERVICE_NAME) != DNS_SERVICE:
            continue
        if sl.get("addressType", "IPv4") != "IPv4":
            continue
        served: dict[tuple[str, int], int] = {}
        named: dict[tuple[str, str], int] = {}
        for p in sl.get("ports") or []:
            if not isinstance(p.get("port"), int):
                continue
            proto = str(p.get("protocol") or "TCP")
            served[(proto, DNS_PORT)] = int(p["port"])
            if p.get("name"):
                named[(proto, str(p["name"]))] = int(p["port"])
        pod_labels = {k: v for k, v in labels.items() if k not in (LABEL_SERVICE_NAME, LABEL_MANAGED_BY)}
        for ep in sl.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            for ip in ep.get("addresses") or []:
                out.append(StandIn(DNS_NAMESPACE, str(ip), pod_labels, served, named))
    return out


def policy_types(policy: Obj) -> tuple[str, ...]:
    """The policy's policyTypes, defaulted as Kubernetes does when a stored object lacks them."""
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes")
    if types:
        return tuple(str(t) for t in types)
    return ("Ingress", "Egress") if spec.get("egress") else ("Ingress",)


def namespace_labels(name: str, namespace: Obj | None) -> dict[str, str]:
    """A namespace's labels for namespaceSelectors, its name label always among them (also for a
    namespace stored before admission set it, or one that has pods but no object)."""
    labels = dict(((namespace or {}).get("metadata") or {}).get("labels") or {})
    labels[NAMESPACE_NAME_LABEL] = name
    return labels


@dataclass(frozen=True)
class _Pod:
    key: str
    namespace: str
    ip: str
    labels: Mapping[str, str]
    ports: Mapping[tuple[str, str], int]  # (protocol, port name) -> containerPort
    node: str
    peer: Peer  # the pod as a peer: its IP/32


def _pod_view(pod: Obj) -> _Pod | None:
    """The parts of a pod that policies look at; None for a pod no rule can name (no IP yet, on
    the host's network, finished)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    ip = status.get("podIP")
    if not ip or spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
        return None
    ports: dict[tuple[str, str], int] = {}
    for c in spec.get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") and p.get("containerPort"):
                ports[(str(p.get("protocol") or "TCP"), str(p["name"]))] = int(p["containerPort"])
    ns = str(meta.get("namespace") or "default")
    labels = dict(meta.get("labels") or {})
    node = str(spec.get("nodeName") or "")
    return _Pod(f"{ns}/{meta.get('name', '')}", ns, str(ip), labels, ports, node, Peer(f"{ip}/32"))


class _World:
    """The cluster's pods and namespaces, indexed once per computation. Selectors are compiled
    and evaluated once per distinct selector: 100 policies tend to repeat a few."""

    def __init__(self, pods: Iterable[Obj], namespaces: Iterable[Obj], stand_ins: Iterable[StandIn] = ()) -> None:
        self.stand_ins = list(stand_ins)
        self.by_ns: dict[str, list[_Pod]] = {}
        for pod in pods:
            view = _pod_view(pod)
            if view is not None:
                self.by_ns.setdefault(view.namespace, []).append(view)
        objs = {str((ns.get("metadata") or {}).get("name") or ""): ns for ns in namespaces}
        names = set(objs) | set(self.by_ns) | {s.namespace for s in self.stand_ins}
        self.ns_labels = {n: namespace_labels(n, objs.get(n)) for n in names if n}
        self._selectors: dict[str, Selector] = {}
        self._matches: dict[tuple[str, str, str], list[_Pod]] = {}
        self._index: dict[str, dict[tuple[str, str], list[_Pod]]] = {}

    def pods(self) -> Iterable[_Pod]:
        for pods in self.by_ns.values():
            yield from pods

    def selector(self, d: Mapping[str, Any]) -> tuple[str, Selector]:
        key = json.dumps(d, sort_keys=True)
        sel = self._selectors.get(key)
        if sel is None:
            sel = self._selectors[key] = selector_from_label_selector(d)
        return key, sel

    def select(
        self, namespace: str, pod_sel: Mapping[str, Any] | None, node: str | None = None
    ) -> list[_Pod]:
        """The pods of `namespace` (on `node`, when given) that `pod_sel` (None: any) matches."""
        key, sel = self.selector(pod_sel or {})
        memo = (namespace, key, node or "")
        found = self._matches.get(memo)
        if found is None:
            pods = self._candidates(namespace, sel)
            found = self._matches[memo] = [
                p for p in pods if (node is None or p.node == node) and (sel.empty() or sel.matches(p.labels))
            ]
        return found

    def _candidates(self, namespace: str, sel: Selector) -> list[_Pod]:
        """The pods of `namespace` that may match `sel`: for a `key=value` requirement (matchLabels),
        only those with that label, from an index built on first use."""
        pods = self.by_ns.get(namespace, [])
        equals = [r for r in sel.requirements if r.operator == EQUALS]
        if not equals or len(pods) < 16:
            return pods
        index = self._index.get(namespace)
        if index is None:
            index = self._index[namespace] = {}
            for p in pods:
                for k, v in p.labels.items():
                    index.setdefault((k, v), []).append(p)
        return min((index.get((r.key, r.values[0]), []) for r in equals), key=len)

    def peer_pods(self, peer: Mapping[str, Any], policy_ns: str) -> list[_Pod]:
        ns_sel = peer.get("namespaceSelector")
        if ns_sel is None:
            namespaces = [policy_ns]
        else:
            _, sel = self.selector(ns_sel)
            namespaces = [n for n, labels in self.ns_labels.items() if sel.matches(labels)]
        pod_sel = peer.get("podSelector")
        return [p for n in namespaces for p in self.select(n, pod_sel)]


    def stand_ins_reached(self, peers: Sequence[Mapping[str, Any]] | None, policy_ns: str) -> list[StandIn]:
        """The StandIns an egress rule's `to` (None or empty: everywhere) names."""
        if not self.stand_ins:
            return []
        if not peers:
            return list(self.stand_ins)
        out: list[StandIn] = []
        for s in self.stand_ins:
            for peer in peers:
                block = peer.get("ipBlock")
                if block is not None:
                    excepts = tuple(str(e) for e in block.get("except") or ())
                    hit = _in_block(s.ip, Peer(str(block["cidr"]), excepts))
                else:
                    ns_sel = peer.get("namespaceSelector")
                    if ns_sel is None:
                        in_ns = s.namespace == policy_ns
                    else:
                        in_ns = self.selector(ns_sel)[1].matches(self.ns_labels.get(s.namespace, {}))
                    pod_sel = self.selector(peer.get("podSelector") or {})[1]
                    hit = in_ns and (pod_sel.empty() or pod_sel.matches(s.labels))
                if hit:
                    out.append(s)
                    break
        return out


def _peer_list(world: _World, peers: Sequence[Mapping[str, Any]] | None, policy_ns: str) -> list[Peer | _Pod]:
    out: list[Peer | _Pod] = []
    for peer in peers or ():
        block = peer.get("ipBlock")
        if block is not None:
            out.append(Peer(str(block["cidr"]), tuple(sorted(str(e) for e in block.get("except") or ()))))
        else:
            out += world.peer_pods(peer, policy_ns)
    return out


def _as_peers(items: Iterable[Peer | _Pod]) -> tuple[Peer, ...]:
    # keyed sort: dataclass comparisons are several times slower, and the order is the same
    unique = {
        p.cidr if not p.excepts else _peer_key(p): p
        for p in (i if isinstance(i, Peer) else i.peer for i in items)
    }
    return tuple(sorted(unique.values(), key=_peer_key))


def _peer_key(peer: Peer) -> tuple[str, tuple[str, ...]]:
    return peer.cidr, peer.excepts


def _ip_key(ip: str) -> tuple[int, bytes]:
    try:
        return 4, socket.inet_aton(ip)
    except OSError:
        return 6, socket.inet_pton(socket.AF_INET6, ip)


def _in_block(ip: str, peer: Peer) -> bool:
    addr = ipaddress.ip_address(ip)
    if addr not in ipaddress.ip_network(peer.cidr, strict=False):
        return False
    return not any(addr in ipaddress.ip_network(e, strict=False) for e in peer.excepts)


def _numeric(ports: Sequence[Mapping[str, Any]]) -> list[PortMatch]:
    out = []
    for p in ports:
        port = p.get("port")
        if port is None or isinstance(port, int):
            end = p.get("endPort")
            out.append(
                PortMatch(str(p.get("protocol") or "TCP"), port, int(end) if end is not None else None)
            )
    return out


def _named(ports: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    return [(str(p.get("protocol") or "TCP"), p["port"]) for p in ports if isinstance(p.get("port"), str)]


def _resolve(named: Sequence[tuple[str, str]], pod: _Pod) -> tuple[PortMatch, ...]:
    return tuple(
        sorted({PortMatch(proto, pod.ports[(proto, n)]) for proto, n in named if (proto, n) in pod.ports})
    )


class _Compiled:
    """One direction's rules of one policy, with everything that does not depend on the selected
    pod worked out once (a policy selecting 1,000 pods is resolved once, not 1,000 times)."""

    def __init__(self, world: _World, rules: Sequence[Mapping[str, Any]], policy_ns: str, egress: bool):
        self.fixed: list[Rule] = []  # the same for every selected pod
        self.per_pod: list[tuple[tuple[Peer, ...] | None, list[tuple[str, str]]]] = []
        self._resolved: dict[tuple[int, tuple[PortMatch, ...]], Rule] = {}
        peers_key = "to" if egress else "from"
        for rule in rules:
            raw_peers = rule.get(peers_key)
            ports = list(rule.get("ports") or ())
            numeric, named = _numeric(ports), _named(ports)
            peer_items = None if not raw_peers else _peer_list(world, raw_peers, policy_ns)
            peers = None if peer_items is None else _as_peers(peer_items)
            if egress:
                for stand_in in world.stand_ins_reached(raw_peers, policy_ns):
                    real = stand_in.translate(ports)
                    if real:  # only the ports it serves, whatever else the rule allows
                        self.fixed.append(Rule((Peer(f"{stand_in.ip}/32"),), real))
            if peers == ():
                continue  # selectors that match no pod today: allows nothing
            if not ports:
                self.fixed.append(Rule(peers, None))
                continue
            if numeric:
                self.fixed.append(Rule(peers, tuple(sorted(set(numeric)))))
            if not named:
                continue
            if not egress:  # the destination is the selected pod: resolved per pod
                self.per_pod.append((peers, named))
                continue
            # Egress to a named port: each destination pod resolves the name itself, so the peers
            # are the pods (among the peers) that have it, grouped by what it resolves to. An
            # address outside the cluster has no port names and never matches.
            if peer_items is None:
                candidates = list(world.pods())
            else:
                blocks = [i for i in peer_items if isinstance(i, Peer)]
                candidates = [i for i in peer_items if isinstance(i, _Pod)]
                if blocks:
                    candidates += [p for p in world.pods() if any(_in_block(p.ip, b) for b in blocks)]
            groups: dict[tuple[PortMatch, ...], set[Peer]] = {}
            for pod in candidates:
                resolved = _resolve(named, pod)
                if resolved:
                    groups.setdefault(resolved, set()).add(pod.peer)
            for resolved, group in sorted(groups.items()):
                self.fixed.append(Rule(tuple(sorted(group)), resolved))

    def rules_for(self, pod: _Pod) -> list[Rule]:
        out = list(self.fixed)
        for i, (peers, named) in enumerate(self.per_pod):
            resolved = _resolve(named, pod)
            if resolved:
                # Pods resolving a name alike share one Rule (hashing its peers once).
                rule = self._resolved.get((i, resolved))
                if rule is None:
                    rule = self._resolved[(i, resolved)] = Rule(peers, resolved)
                out.append(rule)
        return out


def compute(
    pods: Iterable[Obj],
    namespaces: Iterable[Obj],
    policies: Iterable[Obj],
    node_name: str | None = None,
    stand_ins: Iterable[StandIn] = (),
) -> dict[str, PodFirewall]:
    """{pod IP: PodFirewall} for the pods on `node_name` (every node's with None) that some policy
    isolates; a pod missing from the result is not isolated either way. `stand_ins`: addresses
    counted as pods for egress (`dns_stand_ins`). Pure."""
    policies = list(policies)
    if not policies:
        return {}  # the common case, and cheap: no pod is isolated, nothing else to look at
    world = _World(pods, namespaces, stand_ins)
    ingress: dict[str, list[Rule]] = {}
    egress: dict[str, list[Rule]] = {}
    views: dict[str, _Pod] = {}
    for policy in sorted(policies, key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"])):
        ns = str(policy["metadata"].get("namespace") or "default")
        spec = policy.get("spec") or {}
        selected = world.select(ns, spec.get("podSelector"), node_name)
        if not selected:
            continue
        types = policy_types(policy)
        for direction, table, key in (("Ingress", ingress, "ingress"), ("Egress", egress, "egress")):
            if direction not in types:
                continue
            compiled = _Compiled(world, spec.get(key) or (), ns, egress=key == "egress")
            for pod in selected:
                views[pod.ip] = pod
                table.setdefault(pod.ip, []).extend(compiled.rules_for(pod))
    out: dict[str, PodFirewall] = {}
    for ip in sorted(views, key=_ip_key):
        pod = views[ip]
        out[ip] = PodFirewall(pod.key, ip, _final(ingress.get(ip)), _final(egress.get(ip)))
    return out


def _final(rules: list[Rule] | None) -> tuple[Rule, ...] | None:
    """The pod's rules in one direction: None (not isolated), or deduplicated in policy order; a
    rule allowing everything makes the others moot."""
    if rules is None:
        return None
    unique = tuple(dict.fromkeys(rules))
    return (Rule(None, None),) if any(r.allows_all() for r in unique) else unique
