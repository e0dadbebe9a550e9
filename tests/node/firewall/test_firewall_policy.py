"""NetworkPolicy semantics (nbkube.node.firewall.policy), case by case after the Kubernetes docs."""

from __future__ import annotations

from typing import Any

from nbkube.node.firewall.policy import (
    Peer,
    PodFirewall,
    PortMatch,
    Rule,
    compute,
    dns_stand_ins,
    policy_types,
)


def pod(name: str, ns: str, ip: str | None, labels: dict[str, str] | None = None, **kw: Any) -> dict:
    ports = kw.pop("ports", [])
    spec: dict[str, Any] = {"nodeName": kw.pop("node", "n1"), "containers": [{"name": "c", "ports": ports}]}
    spec.update(kw)
    status: dict[str, Any] = {"phase": "Running"}
    if ip:
        status["podIP"] = ip
    return {
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": spec,
        "status": status,
    }


def ns(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}}


def policy(name: str, namespace: str, spec: dict) -> dict:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


ALL = Rule(None, None)
DENY_INGRESS = {"podSelector": {}, "policyTypes": ["Ingress"]}

A1 = pod("a1", "tenant-a", "10.244.1.2", {"app": "web"})
A2 = pod("a2", "tenant-a", "10.244.2.2", {"app": "db"}, node="n2")
B1 = pod("b1", "tenant-b", "10.244.1.3", {"app": "web"})
B2 = pod("b2", "tenant-b", "10.244.2.3", {"app": "api"}, node="n2")
PODS = [A1, A2, B1, B2]
NAMESPACES = [ns("tenant-a", team="a"), ns("tenant-b", team="b")]


def run(*policies: dict, pods: list[dict] = PODS, node: str | None = None) -> dict[str, PodFirewall]:
    return compute(pods, NAMESPACES, policies, node)


def test_without_policies_no_pod_is_isolated() -> None:
    assert run() == {}


def test_default_deny_ingress_isolates_every_pod_of_its_namespace_only() -> None:
    out = run(policy("deny", "tenant-b", DENY_INGRESS))
    assert out == {
        "10.244.1.3": PodFirewall("tenant-b/b1", "10.244.1.3", (), None),
        "10.244.2.3": PodFirewall("tenant-b/b2", "10.244.2.3", (), None),
    }


def test_only_the_pods_of_the_node_asked_about() -> None:
    out = run(policy("deny", "tenant-b", DENY_INGRESS), node="n2")
    assert list(out) == ["10.244.2.3"]


def test_an_empty_rule_allows_everything() -> None:
    out = run(policy("allow", "tenant-b", {"podSelector": {}, "ingress": [{}], "policyTypes": ["Ingress"]}))
    assert out["10.244.1.3"].ingress == (ALL,)


def test_allow_all_makes_other_rules_moot_and_policies_add_up() -> None:
    deny = policy("deny", "tenant-b", DENY_INGRESS)
    allow = policy("allow", "tenant-b", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]})
    out = run(deny, allow)
    assert out["10.244.1.3"].ingress == (ALL,)  # web: allowed by the second policy
    assert out["10.244.2.3"].ingress == ()  # api: only the deny selects it


def test_allow_from_the_same_namespace() -> None:
    same = {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}
    out = run(policy("same-ns", "tenant-b", same))
    peers = (Peer("10.244.1.3/32"), Peer("10.244.2.3/32"))
    assert out["10.244.1.3"].ingress == (Rule(peers, None),)


def test_policy_types_default_as_kubernetes() -> None:
    assert policy_types(policy("p", "x", {"podSelector": {}})) == ("Ingress",)
    assert policy_types(policy("p", "x", {"podSelector": {}, "egress": [{}]})) == ("Ingress", "Egress")
    assert policy_types(policy("p", "x", {"podSelector": {}, "policyTypes": ["Egress"]})) == ("Egress",)
    out = run(policy("e", "tenant-a", {"podSelector": {}, "egress": [{}]}))
    assert out["10.244.1.2"] == PodFirewall("tenant-a/a1", "10.244.1.2", (), (ALL,))


def test_default_deny_egress_leaves_ingress_open() -> None:
    out = run(policy("deny-out", "tenant-a", {"podSelector": {}, "policyTypes": ["Egress"]}))
    assert out["10.244.1.2"].ingress is None
    assert out["10.244.1.2"].egress == ()


def test_the_docs_example_policy() -> None:
    # The "test-network-policy" of the Kubernetes docs, adapted to the pods above.
    spec = {
        "podSelector": {"matchLabels": {"app": "db"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {
                "from": [
                    {"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}},
                    {"namespaceSelector": {"matchLabels": {"team": "b"}}},
                    {"podSelector": {"matchLabels": {"app": "web"}}},
                ],
                "ports": [{"protocol": "TCP", "port": 6379}],
            }
        ],
        "egress": [
            {"to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}], "ports": [{"protocol": "TCP", "port": 5978}]}
        ],
    }
    out = run(policy("test-network-policy", "tenant-a", spec))
    assert list(out) == ["10.244.2.2"]
    fw = out["10.244.2.2"]
    peers = (
        Peer("10.244.1.2/32"),  # a1, app=web in the policy's own namespace
        Peer("10.244.1.3/32"),  # every pod of tenant-b
        Peer("10.244.2.3/32"),
        Peer("172.17.0.0/16", ("172.17.1.0/24",)),
    )
    assert fw.ingress == (Rule(peers, (PortMatch("TCP", 6379),)),)
    assert fw.egress == (Rule((Peer("10.0.0.0/24"),), (PortMatch("TCP", 5978),)),)


def test_namespace_and_pod_selector_in_one_peer_is_and_in_two_peers_is_or() -> None:
    both = {
        "namespaceSelector": {"matchLabels": {"team": "b"}},
        "podSelector": {"matchLabels": {"app": "api"}},
    }
    out = run(policy("and", "tenant-a", {"podSelector": {}, "ingress": [{"from": [both]}]}))
    assert out["10.244.1.2"].ingress == (Rule((Peer("10.244.2.3/32"),), None),)
    either = [
        {"namespaceSelector": {"matchLabels": {"team": "b"}}},
        {"podSelector": {"matchLabels": {"app": "api"}}},
    ]
    out = run(policy("or", "tenant-a", {"podSelector": {}, "ingress": [{"from": either}]}))
    # tenant-a has no app=api pod, so the second peer adds nothing: tenant-b's two pods
    assert out["10.244.1.2"].ingress == (Rule((Peer("10.244.1.3/32"), Peer("10.244.2.3/32")), None),)


def test_namespace_by_name_label_even_on_a_namespace_stored_without_it() -> None:
    sel = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "tenant-a"}}}
    out = run(policy("by-name", "tenant-b", {"podSelector": {}, "ingress": [{"from": [sel]}]}))
    assert out["10.244.1.3"].ingress == (Rule((Peer("10.244.1.2/32"), Peer("10.244.2.2/32")), None),)


def test_an_empty_namespace_selector_means_every_namespace() -> None:
    sel = {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}
    out = run(policy("web-anywhere", "tenant-b", {"podSelector": {}, "ingress": [{"from": [sel]}]}))
    assert out["10.244.1.3"].ingress == (Rule((Peer("10.244.1.2/32"), Peer("10.244.1.3/32")), None),)


def test_peers_that_match_no_pod_allow_nothing() -> None:
    sel = {"podSelector": {"matchLabels": {"app": "nope"}}}
    out = run(policy("nobody", "tenant-b", {"podSelector": {}, "ingress": [{"from": [sel]}]}))
    assert out["10.244.1.3"].ingress == ()


def test_pods_without_an_ip_on_the_host_network_or_finished_are_no_peers() -> None:
    pods = [
        *PODS,
        pod("pending", "tenant-b", None),
        pod("host", "tenant-b", "10.240.0.2", hostNetwork=True),
        {**pod("done", "tenant-b", "10.244.1.9"), "status": {"phase": "Succeeded", "podIP": "10.244.1.9"}},
    ]
    out = run(
        policy("same", "tenant-b", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}),
        pods=pods,
    )
    assert set(out) == {"10.244.1.3", "10.244.2.3"}
    assert out["10.244.1.3"].ingress == (Rule((Peer("10.244.1.3/32"), Peer("10.244.2.3/32")), None),)


def test_ports_protocols_ranges_and_any_port_of_a_protocol() -> None:
    ports = [
        {"protocol": "TCP", "port": 32000, "endPort": 32768},
        {"protocol": "UDP", "port": 53},
        {"protocol": "SCTP"},
    ]
    out = run(policy("ports", "tenant-b", {"podSelector": {}, "ingress": [{"ports": ports}]}))
    want = (PortMatch("SCTP"), PortMatch("TCP", 32000, 32768), PortMatch("UDP", 53))
    assert out["10.244.1.3"].ingress == (Rule(None, want),)


def test_a_named_port_resolves_against_each_selected_pod() -> None:
    pods = [
        pod(
            "w1",
            "t",
            "10.244.1.5",
            {"app": "w"},
            ports=[{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        ),
        pod(
            "w2",
            "t",
            "10.244.1.6",
            {"app": "w"},
            ports=[{"name": "http", "containerPort": 9090, "protocol": "TCP"}],
        ),
        pod("w3", "t", "10.244.1.7", {"app": "w"}),
    ]
    spec = {"podSelector": {}, "ingress": [{"ports": [{"protocol": "TCP", "port": "http"}]}]}
    out = run(policy("named", "t", spec), pods=pods)
    assert out["10.244.1.5"].ingress == (Rule(None, (PortMatch("TCP", 8080),)),)
    assert out["10.244.1.6"].ingress == (Rule(None, (PortMatch("TCP", 9090),)),)
    assert out["10.244.1.7"].ingress == ()  # no port of that name: the rule allows nothing here


def test_an_egress_named_port_resolves_against_each_destination_pod() -> None:
    pods = [
        pod("client", "t", "10.244.1.5", {"app": "client"}),
        pod("s1", "t", "10.244.1.6", {"app": "s"}, ports=[{"name": "http", "containerPort": 8080}]),
        pod(
            "s2", "t", "10.244.2.6", {"app": "s"}, ports=[{"name": "http", "containerPort": 9090}], node="n2"
        ),
        pod(
            "s3", "u", "10.244.2.7", {"app": "s"}, ports=[{"name": "http", "containerPort": 8080}], node="n2"
        ),
    ]
    spec = {
        "podSelector": {"matchLabels": {"app": "client"}},
        "policyTypes": ["Egress"],
        "egress": [
            {
                "to": [{"podSelector": {"matchLabels": {"app": "s"}}}],
                "ports": [{"port": "http"}, {"port": 53, "protocol": "UDP"}],
            },
            {"to": [{"ipBlock": {"cidr": "10.244.2.0/24"}}], "ports": [{"port": "http"}]},
        ],
    }
    out = run(policy("out", "t", spec), pods=pods)
    assert out["10.244.1.5"].egress == (
        Rule((Peer("10.244.1.6/32"), Peer("10.244.2.6/32")), (PortMatch("UDP", 53),)),
        Rule((Peer("10.244.1.6/32"),), (PortMatch("TCP", 8080),)),
        Rule((Peer("10.244.2.6/32"),), (PortMatch("TCP", 9090),)),
        Rule((Peer("10.244.2.7/32"),), (PortMatch("TCP", 8080),)),  # the pod in the block, any namespace
    )


def test_a_policy_in_another_namespace_never_selects() -> None:
    out = run(policy("deny", "tenant-c", DENY_INGRESS))
    assert out == {}


def test_match_expressions_select_pods() -> None:
    sel = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db", "api"]}]}
    out = run(policy("expr", "tenant-a", {"podSelector": sel, "policyTypes": ["Ingress"]}))
    assert list(out) == ["10.244.2.2"]


def test_duplicate_rules_from_two_policies_collapse() -> None:
    spec = {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}
    out = run(policy("one", "tenant-b", spec), policy("two", "tenant-b", spec))
    assert out["10.244.1.3"].ingress == (Rule(None, (PortMatch("TCP", 80),)),)


# -- the cluster DNS as kube-system's DNS pods (StandIn) --------------------------------------------

DNS_IP = "10.240.0.1"
DNS_SLICE = {
    "metadata": {
        "name": "kube-dns-abc",
        "namespace": "kube-system",
        "labels": {
            "k8s-app": "kube-dns",
            "kubernetes.io/service-name": "kube-dns",
            "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io",
        },
    },
    "addressType": "IPv4",
    "endpoints": [{"addresses": [DNS_IP], "conditions": {"ready": True}}],
    "ports": [{"name": "dns", "port": 41053, "protocol": "UDP"}, {"name": "dns-tcp", "port": 41053, "protocol": "TCP"}],
}
OTHER_SLICE = {**DNS_SLICE, "metadata": {**DNS_SLICE["metadata"], "namespace": "tenant-b"}}
DNS_PEER = (Peer(f"{DNS_IP}/32"),)
DNS_PORTS = (PortMatch("TCP", 41053), PortMatch("UDP", 41053))
KUBE_SYSTEM = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
PORT_53 = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]


def run_dns(*policies: dict, slices: list[dict] = [DNS_SLICE]) -> dict[str, PodFirewall]:  # noqa: B006
    return compute(PODS, NAMESPACES, policies, "n1", stand_ins=dns_stand_ins(slices))


def egress(*rules: dict) -> dict:
    return {"podSelector": {}, "policyTypes": ["Egress"], "egress": list(rules)}


def test_dns_stand_ins_only_from_kube_system_kube_dns() -> None:
    (dns,) = dns_stand_ins([DNS_SLICE, OTHER_SLICE])
    assert dns.ip == DNS_IP and dns.namespace == "kube-system"
    assert dict(dns.labels) == {"k8s-app": "kube-dns"}
    assert dict(dns.served) == {("UDP", 53): 41053, ("TCP", 53): 41053}


def test_allow_dns_the_upstream_way_opens_exactly_the_dns_server_port() -> None:
    rule = {"to": [{**KUBE_SYSTEM, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}], "ports": PORT_53}
    out = run_dns(policy("allow-dns", "tenant-a", egress(rule)))
    assert out["10.244.1.2"].egress == (Rule(DNS_PEER, DNS_PORTS),)


def test_allow_dns_by_ports_alone_or_named_ports() -> None:
    out = run_dns(policy("p", "tenant-a", egress({"ports": [{"protocol": "UDP", "port": 53}]})))
    assert Rule(DNS_PEER, (PortMatch("UDP", 41053),)) in out["10.244.1.2"].egress
    named = {"to": [KUBE_SYSTEM], "ports": [{"protocol": "TCP", "port": "dns-tcp"}]}
    out = run_dns(policy("p", "tenant-a", egress(named)))
    assert out["10.244.1.2"].egress == (Rule(DNS_PEER, (PortMatch("TCP", 41053),)),)


def test_kube_system_without_ports_still_opens_only_the_dns_ports() -> None:
    out = run_dns(policy("p", "tenant-a", egress({"to": [KUBE_SYSTEM]})))
    assert out["10.244.1.2"].egress == (Rule(DNS_PEER, DNS_PORTS),)


def test_rules_that_do_not_reach_the_dns_add_nothing_for_it() -> None:
    # another port, another namespace, another pod label, a block without its address
    for rule in (
        {"to": [KUBE_SYSTEM], "ports": [{"protocol": "TCP", "port": 80}]},
        {"to": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}], "ports": PORT_53},
        {"to": [{**KUBE_SYSTEM, "podSelector": {"matchLabels": {"k8s-app": "other"}}}], "ports": PORT_53},
        {"to": [{"ipBlock": {"cidr": "10.240.0.0/24", "except": [f"{DNS_IP}/32"]}}], "ports": PORT_53},
        {"to": [{"podSelector": {}}], "ports": PORT_53},  # the policy's own namespace only
    ):
        out = run_dns(policy("p", "tenant-a", egress(rule)))
        fw = out["10.244.1.2"].egress or ()
        assert all(r.peers != DNS_PEER for r in fw), rule


def test_an_ip_block_holding_the_dns_address_on_53_reaches_it() -> None:
    out = run_dns(policy("p", "tenant-a", egress({"to": [{"ipBlock": {"cidr": "10.240.0.0/16"}}], "ports": PORT_53})))
    assert Rule(DNS_PEER, DNS_PORTS) in (out["10.244.1.2"].egress or ())


def test_no_dns_slice_no_dns_rule() -> None:
    rule = {"to": [KUBE_SYSTEM], "ports": PORT_53}
    assert run_dns(policy("p", "tenant-a", egress(rule)), slices=[])["10.244.1.2"].egress == ()
