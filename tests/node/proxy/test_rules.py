"""The proxy table: which addresses a service answers on and which pods it reaches."""

from nbkube.node.proxy.rules import Backend, RuleCache, compute_rules


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


# --- RuleCache: compute_rules with memory ---------------------------------------------------------


def _versioned(obj: dict, rv: int) -> dict:
    return {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(rv)}}


def test_rule_cache_equals_compute_rules_through_adds_changes_and_removes():
    cache = RuleCache()
    services = {
        n: _versioned(_svc(name=n, cluster_ip=f"10.96.0.{i + 1}"), i + 1) for i, n in enumerate("abc")
    }
    endpoints = {n: _versioned(_ep(name=n, addresses=["10.244.0.2"]), 10 + i) for i, n in enumerate("abc")}
    rv = 100

    def check() -> list:
        got = cache.compute(services.values(), endpoints.values())
        assert got == compute_rules(services.values(), endpoints.values())
        return got

    first = check()
    assert cache.recomputed == 3
    again = check()
    assert cache.recomputed == 0 and all(a is b for a, b in zip(first, again, strict=True))
    rv += 1
    endpoints["b"] = _versioned(_ep(name="b", addresses=["10.244.0.2", "10.244.1.2"]), rv)
    changed = check()
    assert cache.recomputed == 1 and changed[0] is first[0] and changed[2] is first[2]
    assert [b.ip for b in changed[1].backends] == ["10.244.0.2", "10.244.1.2"]
    del endpoints["c"]  # endpoints gone: the service stays, without backends
    assert check()[2].backends == () and cache.recomputed == 1
    rv += 1
    services["d"] = _versioned(_svc(name="d", cluster_ip="10.96.0.9"), rv)
    assert [r.service for r in check()] == ["default/a", "default/b", "default/c", "default/d"]
    del services["a"]
    assert [r.service for r in check()] == ["default/b", "default/c", "default/d"]
    assert cache.recomputed == 0


def test_rule_cache_recomputes_objects_without_a_resource_version():
    cache = RuleCache()
    svc, ep = _svc(), _ep(addresses=["10.244.0.2"])
    cache.compute([svc], [ep])
    ep["subsets"][0]["addresses"][0]["ip"] = "10.244.0.3"  # no version to tell: must not be cached
    (rule,) = cache.compute([svc], [ep])
    assert cache.recomputed == 1 and rule.backends[0].ip == "10.244.0.3"


def test_rule_cache_refresh_of_changed_keys_equals_compute_rules():
    import random

    rng = random.Random(3)
    cache = RuleCache()
    services: dict[str, dict] = {}
    endpoints: dict[str, dict] = {}
    assert cache.compute([], []) == []
    for rv in range(1, 400):
        name = f"s{rng.randrange(8)}"
        key = f"default/{name}"
        what = rng.random()
        if what < 0.15:
            services.pop(key, None)
        elif what < 0.25:
            endpoints.pop(key, None)
        elif what < 0.5:
            ports = [
                {"name": p, "port": 80 + i, "protocol": "TCP"}
                for i, p in enumerate(rng.sample(["a", "b", "c"], 2))
            ]
            services[key] = _versioned(
                _svc(name=name, ports=ports, cluster_ip=f"10.96.0.{int(name[1:]) + 1}"), rv
            )
        else:
            ips = [f"10.244.0.{rng.randint(2, 9)}" for _ in range(rng.randint(0, 3))]
            ports = [{"name": p, "port": 8000 + i, "protocol": "TCP"} for i, p in enumerate(["a", "b", "c"])]
            endpoints[key] = _versioned(_ep(name=name, addresses=ips, ports=ports), rv)
        got = cache.refresh([key], services.get, endpoints.get)
        assert got == compute_rules(services.values(), endpoints.values()), rv
