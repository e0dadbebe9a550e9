"""The proxy table: which addresses a service answers on and which pods it reaches."""

from nbkube.node.proxy.rules import Backend, compute_rules


def _svc(name="web", ports=None, cluster_ip="10.96.0.10", **spec):
    return {
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "clusterIP": cluster_ip,
            "ports": ports or [{"port": 8000, "targetPort": 80, "protocol": "TCP", "nodePort": 30001}],
            **spec,
        },
    }


def _ep(name="web", addresses=(), not_ready=(), ports=None):
    return {
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": "default"},
        "subsets": [
            {
                "addresses": [
                    {"ip": ip, "targetRef": {"kind": "Pod", "namespace": "default", "name": f"p-{ip}"}}
                    for ip in addresses
                ],
                "notReadyAddresses": [{"ip": ip} for ip in not_ready],
                "ports": ports or [{"port": 80, "protocol": "TCP"}],
            }
        ],
    }


def test_ready_addresses_become_backends_and_not_ready_ones_do_not():
    (rule,) = compute_rules([_svc()], [_ep(addresses=["10.244.1.3", "10.244.0.2"], not_ready=["10.244.2.9"])])
    assert rule.id == "default/web"
    assert (rule.cluster_ip, rule.port, rule.node_port) == ("10.96.0.10", 8000, 30001)
    assert rule.backends == (
        Backend("10.244.0.2", 80, "default/p-10.244.0.2"),
        Backend("10.244.1.3", 80, "default/p-10.244.1.3"),
    )


def test_named_ports_match_by_name_and_headless_services_are_skipped():
    svc = _svc(
        ports=[
            {"name": "http", "port": 80, "protocol": "TCP"},
            {"name": "metrics", "port": 9090, "protocol": "TCP"},
        ]
    )
    ep = _ep(
        addresses=["10.244.0.2"],
        ports=[
            {"name": "http", "port": 8080, "protocol": "TCP"},
            {"name": "metrics", "port": 9100, "protocol": "TCP"},
        ],
    )
    headless = _svc(name="db", cluster_ip="None")
    rules = compute_rules([svc, headless], [ep])
    assert [(r.id, r.backends[0].port) for r in rules] == [
        ("default/web:http", 8080),
        ("default/web:metrics", 9100),
    ]


def test_service_without_endpoints_has_no_backends():
    (rule,) = compute_rules([_svc(sessionAffinity="ClientIP")], [])
    assert rule.backends == () and rule.session_affinity and rule.affinity_timeout == 10800
