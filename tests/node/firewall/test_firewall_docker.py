"""NetworkPolicy enforced with real packets: 2 Docker nodes, tenants `tenant-a` and `tenant-b`.

Marked `docker` (root + a Docker daemon; skipped with the reason otherwise, failing instead with
NBKUBE_REQUIRE_DOCKER=1). One cluster serves the module's tests in order; the last one takes it
down and checks that no `NBK-FW-` rule is left. Each pod runs busybox httpd on port 80 (and 8080,
named `alt`); traffic is `wget` (bounded by `timeout 2`) exec'd in one pod towards another. A policy takes effect after a
sync, so every check polls, bounded by `wait_until`; nothing about timing is asserted.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from nbk_clustertest import get_or_empty, pod_ready, wait_until

from nbkube.cluster import LocalCluster
from nbkube.node.firewall.runner import FirewallRunner

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# (name, namespace, node)
PODS = [
    ("a1", "tenant-a", "node-1"),
    ("a2", "tenant-a", "node-2"),
    ("b1", "tenant-b", "node-1"),
    ("b2", "tenant-b", "node-2"),
]


def _pod(name: str, namespace: str, node: str) -> dict[str, Any]:
    serve = f"mkdir -p /w && echo {name} > /w/index.html && httpd -p 8080 -h /w && exec httpd -f -p 80 -h /w"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "web",
                    "image": "busybox",
                    "command": ["sh", "-c", serve],
                    "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 8080, "name": "alt"}],
                    # probed from the node itself: must keep passing under a deny-all policy
                    "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 1},
                }
            ],
        },
    }


def _policy(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[LocalCluster]:
    data = tmp_path_factory.mktemp("netpol-cluster")
    c = LocalCluster(nodes=2, runtime="docker", store="sqlite", profile="fast", data_dir=str(data), name="np")
    try:
        for ns in ("tenant-a", "tenant-b"):
            c.api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for name, ns, node in PODS:
            c.api.create(_pod(name, ns, node))
        wait_until(lambda: all(pod_ready(_get(c, n)) for n, _, _ in PODS), 60, "4 ready httpd pods")
        yield c
    finally:
        c.stop()


def _get(cluster: LocalCluster, name: str) -> dict[str, Any]:
    ns = next(n for p, n, _ in PODS if p == name)
    return cluster.api.get("Pod", name, ns)


def reach(cluster: LocalCluster, src: str, dst: str, port: int = 80) -> bool:
    """Whether `src`'s wget gets `dst`'s page on `port` (within 2 s: a DROP shows as a timeout).

    Bounded by `timeout`, not wget's own `-T`, with which this busybox's wget crashes (SIGSEGV)."""
    pod = _get(cluster, src)
    ip = _get(cluster, dst)["status"]["podIP"]
    runtime = cluster.runtimes[pod["spec"]["nodeName"]]
    code, out = runtime.exec(  # type: ignore[attr-defined]
        pod["metadata"]["uid"], "web", ["timeout", "2", "wget", "-qO-", f"http://{ip}:{port}/"]
    )
    return code == 0 and out.strip() == dst


def settle(cluster: LocalCluster, allowed: dict[tuple[str, str, int], bool]) -> None:
    """Wait until every (src, dst, port) is reachable or not as `allowed` says."""
    for (src, dst, port), want in allowed.items():
        wait_until(
            lambda src=src, dst=dst, port=port, want=want: reach(cluster, src, dst, port) == want,
            30,
            f"{src} -> {dst}:{port} {'allowed' if want else 'blocked'}",
            interval=0.2,
        )


def _netns_rules(netns: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", netns, "iptables-save", "-t", "filter"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_everything_is_allowed_before_any_policy(cluster: LocalCluster) -> None:
    settle(
        cluster,
        {("a1", "b1", 80): True, ("a2", "b1", 80): True, ("b2", "b1", 80): True, ("b1", "a2", 8080): True},
    )
    assert "-j NBK-FW-FORWARD" in _netns_rules("nbk-node-1")


def test_default_deny_in_tenant_b_keeps_tenant_a_out_but_lets_tenant_b_in(cluster: LocalCluster) -> None:
    cluster.api.create(_policy("tenant-b", "default-deny", {"podSelector": {}, "policyTypes": ["Ingress"]}))
    settle(cluster, {("a1", "b1", 80): False, ("a2", "b1", 80): False, ("b2", "b1", 80): False})
    cluster.api.create(
        _policy(
            "tenant-b", "same-namespace", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}
        )
    )
    settle(
        cluster,
        {
            ("b2", "b1", 80): True,  # across nodes
            ("b1", "b2", 8080): True,
            ("a1", "b1", 80): False,  # same node, other tenant
            ("a2", "b2", 80): False,
            ("b1", "a1", 80): True,  # tenant-a is not isolated; replies come back into tenant-b
        },
    )
    # the node's own probes still reach the isolated pods
    assert all(pod_ready(_get(cluster, n)) for n in ("b1", "b2"))


def test_a_node_port_does_not_get_around_the_policy(cluster: LocalCluster) -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "b1", "namespace": "tenant-b"},
        "spec": {"type": "NodePort", "selector": {"app": "b1"}, "ports": [{"port": 80}]},
    }
    node_port = cluster.api.create(svc)["spec"]["ports"][0]["nodePort"]
    # the proxy's ClusterIP works for tenant-b's own pods...
    cluster_ip = cluster.api.get("Service", "b1", "tenant-b")["spec"]["clusterIP"]
    pod = _get(cluster, "b2")
    runtime = cluster.runtimes["node-2"]
    wait_until(
        lambda: (
            runtime.exec(
                pod["metadata"]["uid"], "web", ["timeout", "2", "wget", "-qO-", f"http://{cluster_ip}/"]
            )[0]  # type: ignore[attr-defined]
            == 0
        ),
        30,
        "b2 -> b1 through its ClusterIP",
    )
    # ...but this machine, outside tenant-b, is kept out on the NodePort too: the rule is checked
    # after the proxy's DNAT on b1's node, also when the request comes in there (node-1), where the
    # proxy's own FORWARD rules would accept it if they came first
    for node in ("node-1", "node-2"):
        assert get_or_empty(f"http://{cluster.node_addresses()[node]}:{node_port}/", timeout=2.0) == ""


def test_an_ip_block_with_an_except_and_a_named_port(cluster: LocalCluster) -> None:
    a2_ip = _get(cluster, "a2")["status"]["podIP"]
    spec = {
        "podSelector": {"matchLabels": {"app": "b1"}},
        "ingress": [
            {
                "from": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": [f"{a2_ip}/32"]}}],
                "ports": [{"port": "alt"}],
            }
        ],
    }
    cluster.api.create(_policy("tenant-b", "cluster-to-alt", spec))
    settle(
        cluster,
        {
            ("a1", "b1", 8080): True,
            ("a1", "b1", 80): False,  # only the named port is open to the block
            ("a2", "b1", 8080): False,  # the except
            ("b2", "b1", 80): True,  # same-namespace still allows every port
        },
    )


def test_deleting_the_policies_restores_traffic(cluster: LocalCluster) -> None:
    for name in ("default-deny", "same-namespace", "cluster-to-alt"):
        cluster.api.delete("NetworkPolicy", name, "tenant-b")
    settle(cluster, {("a1", "b1", 80): True, ("a2", "b1", 80): True, ("a2", "b2", 80): True})
    node_port = cluster.api.get("Service", "b1", "tenant-b")["spec"]["ports"][0]["nodePort"]
    for node in ("node-1", "node-2"):
        url = f"http://{cluster.node_addresses()[node]}:{node_port}/"
        assert wait_until(lambda url=url: get_or_empty(url, timeout=2.0), 30, f"{url} answering") == "b1"
    cluster.api.delete("Service", "b1", "tenant-b")


def test_egress_deny(cluster: LocalCluster) -> None:
    spec = {"podSelector": {"matchLabels": {"app": "a1"}}, "policyTypes": ["Egress"]}
    cluster.api.create(_policy("tenant-a", "a1-no-egress", spec))
    settle(
        cluster,
        {("a1", "b1", 80): False, ("a1", "a2", 80): False, ("a2", "b1", 80): True, ("b1", "a1", 80): True},
    )
    ports = {
        "podSelector": {"matchLabels": {"app": "a1"}},
        "egress": [{"ports": [{"protocol": "TCP", "port": 8080}]}],
    }
    cluster.api.create(_policy("tenant-a", "a1-out-on-8080", ports))
    settle(cluster, {("a1", "b2", 8080): True, ("a1", "b2", 80): False})
    cluster.api.delete("NetworkPolicy", "a1-no-egress", "tenant-a")
    cluster.api.delete("NetworkPolicy", "a1-out-on-8080", "tenant-a")
    settle(cluster, {("a1", "b1", 80): True, ("a1", "a2", 80): True})


def test_teardown_leaves_no_firewall_rule(cluster: LocalCluster) -> None:
    cluster.api.create(_policy("tenant-b", "default-deny", {"podSelector": {}, "policyTypes": ["Ingress"]}))
    settle(cluster, {("a1", "b1", 80): False})
    assert "NBK-FW-I-" in _netns_rules("nbk-node-1")
    runner = next(p for p in cluster.kits["node-1"].parts if isinstance(p, FirewallRunner))
    runner.stop()  # no re-sync from now on
    runner.firewall.cleanup()
    rules = _netns_rules("nbk-node-1")
    assert "NBK-FW-" not in rules
    assert "NBK-SERVICES" in rules  # the proxy's rules are untouched
    settle(cluster, {("a1", "b1", 80): True})
    cluster.stop()
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert "nbk-node-" not in netns
    host = subprocess.run(
        ["iptables-save", "-t", "filter"], capture_output=True, text=True, check=True
    ).stdout
    assert "NBK-FW-" not in host
