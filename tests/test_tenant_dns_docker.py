"""Tenants keep the cluster DNS, and nothing more, on 2 Docker nodes.

`Tenants.create` fences each tenant in with default-deny NetworkPolicies plus `allow-dns` (egress
UDP/TCP 53 to kube-system's kube-dns pods, as upstream tenants write it). nbkube's cluster DNS is
a server on the host bridge that the firewall counts as those pods (nbkube/node/firewall/policy.py).
From alice's pod on one node: `web` (a Service of alice, its pod on the other node) resolves by
its short name and answers over HTTP; bob's Service name resolves too (DNS is the cluster's), but
bob's pod cannot be reached, by name or by IP; and the firewall opened only the DNS server's port on
the host bridge, so another port there (a listener of this test) stays unreachable.

Marked `docker` (root and a Docker daemon). Run under `flock /tmp/nbkube-docker.lock`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from nbk_clustertest import pod_ready, wait_until

from nbkube.client.tenants import Tenants
from nbkube.cluster import LocalCluster

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SERVE = "mkdir -p /tmp/www && echo $(POD_NAME) > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"


def _pod(name: str, namespace: str, node: str, *, serve: bool, labels: dict[str, str]) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "c",
        "image": "busybox",
        "command": ["sh", "-c", SERVE] if serve else ["sleep", "3600"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if serve:
        container["ports"] = [{"containerPort": 8080, "name": "http"}]
        container["readinessProbe"] = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "nodeName": node,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
        },
    }


def _service(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]},
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[LocalCluster]:
    data = tmp_path_factory.mktemp("tenant-dns")
    c = LocalCluster(nodes=2, runtime="docker", store="sqlite", profile="fast", data_dir=str(data), name="dktdns")
    try:
        c.start()
        nodes = sorted(n["metadata"]["name"] for n in c.api.list("Node")[0])
        tenants = Tenants(c.api)
        for name in ("alice", "bob"):
            tenants.create(name, kubeconfig=str(data / f"{name}.kubeconfig"))
            c.api.create(_service(name))
            c.api.create(_pod("web", name, nodes[1], serve=True, labels={"app": "web"}))
        c.api.create(_pod("client", "alice", nodes[0], serve=False, labels={"app": "client"}))
        wait_until(
            lambda: all(
                pod_ready(c.api.get("Pod", pod, ns))
                for pod, ns in (("web", "alice"), ("web", "bob"), ("client", "alice"))
            ),
            90,
            "tenant pods ready",
        )
        yield c
    finally:
        c.stop()


def _exec(c: LocalCluster, argv: list[str]) -> tuple[int, str]:
    pod = c.api.get("Pod", "client", "alice")
    runtime = c.runtimes[pod["spec"]["nodeName"]]
    code, out = runtime.exec(pod["metadata"]["uid"], "c", argv)  # type: ignore[attr-defined]
    return int(code), str(out)


def _http_get(c: LocalCluster, host: str) -> tuple[int, str]:
    # busybox's nc, not its wget: wget crashes (SIGSEGV) as a non-root user in this image
    return _exec(c, ["sh", "-c", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} 8080"])


def test_the_tenant_has_the_upstream_allow_dns_policy(cluster: LocalCluster) -> None:
    spec = cluster.api.get("NetworkPolicy", "allow-dns", "alice")["spec"]
    (rule,) = spec["egress"]
    assert rule["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert {(p["protocol"], p["port"]) for p in rule["ports"]} == {("UDP", 53), ("TCP", 53)}


def test_a_tenant_pod_resolves_service_names_and_reaches_its_own_service(cluster: LocalCluster) -> None:
    ip = cluster.api.get("Service", "web", "alice")["spec"]["clusterIP"]
    code, out = _exec(cluster, ["nslookup", "web.alice.svc.cluster.local"])
    assert code == 0 and ip in out, out
    # the short name, through resolv.conf's search path, as an application would use it
    code, out = _http_get(cluster, "web")
    assert code == 0 and out.rstrip().endswith("\nweb"), out
    # a Service of another namespace by its namespaced name
    code, out = _exec(cluster, ["nslookup", "kube-dns.kube-system.svc.cluster.local"])
    assert code == 0 and "10.96.0.10" in out, out


def test_another_tenant_resolves_but_cannot_be_reached(cluster: LocalCluster) -> None:
    bob_svc = cluster.api.get("Service", "web", "bob")["spec"]["clusterIP"]
    code, out = _exec(cluster, ["nslookup", "web.bob.svc.cluster.local"])
    assert code == 0 and bob_svc in out, out
    bob_pod = cluster.api.get("Pod", "web", "bob")["status"]["podIP"]
    for host in ("web.bob", bob_pod):
        code, out = _http_get(cluster, host)
        assert "200 OK" not in out and not out.rstrip().endswith("web"), (host, out)


def test_only_the_dns_port_is_open_on_the_host_bridge(cluster: LocalCluster) -> None:
    host, dns_port = cluster.dns.address  # type: ignore[union-attr]
    listener = socket.create_server((host, 0))
    port = listener.getsockname()[1]
    accepted: list[object] = []
    listener.settimeout(8)

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(listener.accept()[0])

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        code, out = _exec(cluster, ["nc", "-w", "3", host, str(port)])
        t.join(10)
        assert not accepted, f"a tenant pod reached {host}:{port} on the host bridge"
        # the DNS server's own port, straight at its address, is what allow-dns opened
        code, out = _exec(cluster, ["nslookup", "web.alice.svc.cluster.local", f"{host}:{dns_port}"])
        assert code == 0, out
    finally:
        listener.close()
        for s in accepted:
            s.close()  # type: ignore[attr-defined]


def test_without_allow_dns_the_tenant_has_no_dns(cluster: LocalCluster) -> None:
    # last in the module: it takes the policy away, showing that allow-dns is what opened the way
    cluster.api.delete("NetworkPolicy", "allow-dns", "alice")
    code, out = 0, ""
    for _ in range(20):  # the firewalls resync from their informers
        code, out = _exec(cluster, ["timeout", "6", "nslookup", "web.alice.svc.cluster.local"])
        if code != 0:
            break
        time.sleep(0.5)
    assert code != 0, out
