"""A pod's resolv.conf by dnsPolicy and dnsConfig, and the kubelet's Service variables."""

from __future__ import annotations

from nbkube.node.runtime.dnsconf import ResolvConf, dns_refusals, parse_resolv_conf, pod_resolv_conf
from nbkube.node.runtime.serviceenv import service_env

HOST = parse_resolv_conf("nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n")


def _pod(spec=None, ns="default"):
    return {"metadata": {"name": "p", "namespace": ns}, "spec": dict(spec or {})}


def _conf(pod):
    return pod_resolv_conf(pod, cluster_dns=["10.96.0.10"], cluster_domain="cluster.local", host=HOST).render()


def test_cluster_first_is_the_default():
    assert _conf(_pod(ns="shop")) == (
        "nameserver 10.96.0.10\n"
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
        "options ndots:5\n"
    )


def test_default_policy_and_host_network_use_the_node_resolvers():
    node = "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"
    assert _conf(_pod({"dnsPolicy": "Default"})) == node
    assert _conf(_pod({"hostNetwork": True})) == node
    assert _conf(_pod({"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"})).startswith(
        "nameserver 10.96.0.10\n"
    )
    # no cluster DNS on this node: ClusterFirst falls back to the node's
    assert pod_resolv_conf(_pod(), cluster_dns=[], cluster_domain="cluster.local", host=HOST).render() == node


def test_none_takes_only_dns_config_and_dns_config_merges():
    none = _pod(
        {
            "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["1.2.3.4"], "searches": ["a.example"], "options": [{"name": "ndots", "value": "2"}]},
        }
    )
    assert _conf(none) == "nameserver 1.2.3.4\nsearch a.example\noptions ndots:2\n"
    merged = _pod(
        {
            "dnsConfig": {
                "nameservers": ["10.96.0.10", "1.2.3.4", "5.6.7.8", "9.9.9.9"],
                "searches": ["svc.cluster.local", "b.example"],
                "options": [{"name": "ndots", "value": "1"}, {"name": "single-request-reopen"}],
            }
        }
    )
    conf = parse_resolv_conf(_conf(merged))
    assert conf.nameservers == ["10.96.0.10", "1.2.3.4", "5.6.7.8"]  # at most 3, no duplicates
    assert conf.searches == [
        "default.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example", "b.example"
    ]  # fmt: skip
    assert conf.options == [("ndots", "1"), ("single-request-reopen", None)]


def test_process_runtime_refuses_what_only_a_resolv_conf_could_honour():
    assert dns_refusals(_pod()) == []
    errs = dns_refusals(_pod({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.2.3.4"]}}))
    assert len(errs) == 2 and all("process runtime" in e for e in errs)
    assert errs[0].startswith("spec.dnsPolicy: Forbidden") and errs[1].startswith("spec.dnsConfig: Forbidden")
    assert ResolvConf().render() == "\n"


def _svc(name, ip, ports, ns="default"):
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "ports": ports}}


SERVICES = [
    _svc("web-api", "10.96.1.2", [{"name": "http", "port": 8000, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]),
    _svc("kubernetes", "10.96.0.1", [{"name": "https", "port": 443, "protocol": "TCP"}]),
    _svc("headless", "None", [{"port": 80}]),
    _svc("other", "10.96.3.3", [{"port": 80}], ns="shop"),
]


def test_service_variables_as_the_kubelet_sets_them():
    env = service_env(_pod(), SERVICES)
    assert env["WEB_API_SERVICE_HOST"] == "10.96.1.2"
    assert env["WEB_API_SERVICE_PORT"] == "8000"
    assert env["WEB_API_SERVICE_PORT_HTTP"] == "8000"
    assert env["WEB_API_SERVICE_PORT_DNS"] == "53"
    assert env["WEB_API_PORT"] == "tcp://10.96.1.2:8000"
    assert env["WEB_API_PORT_53_UDP"] == "udp://10.96.1.2:53"
    assert env["WEB_API_PORT_53_UDP_PROTO"] == "udp"
    assert env["WEB_API_PORT_8000_TCP_PORT"] == "8000"
    assert env["WEB_API_PORT_8000_TCP_ADDR"] == "10.96.1.2"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert not any(k.startswith(("HEADLESS_", "OTHER_")) for k in env)  # no ClusterIP; other namespace


def test_enable_service_links_false_keeps_only_the_master_service():
    env = service_env(_pod({"enableServiceLinks": False}), SERVICES)
    assert sorted({k.split("_")[0] for k in env}) == ["KUBERNETES"]
    shop = service_env(_pod(ns="shop"), SERVICES)
    assert shop["OTHER_SERVICE_HOST"] == "10.96.3.3" and shop["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert "OTHER_SERVICE_PORT_" not in "".join(shop)  # an unnamed port has no _PORT_<NAME>
    mirrored = service_env(_pod(), SERVICES, host_of=lambda ip: ip.replace("10.", "127.", 1))
    assert mirrored["WEB_API_SERVICE_HOST"] == "127.96.1.2"
