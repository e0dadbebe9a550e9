"""The embedded mode end to end: process runtime, loopback pod IPs, the userspace proxy (no root needed).

The article's scenario adapted for rootless nodes (nbkube/examples/rootless/web-*.yaml: busybox httpd on the pod's
own loopback address, port 8080): five pods on three nodes, the Service's ClusterIP answers on its
loopback mirror round robin, every node answers on NodePort 30001, and stopping the cluster leaves
no process and no listening socket behind.
"""

from __future__ import annotations

import collections
import ipaddress
import os
import socket
import urllib.request
from typing import Any

import pytest
from nbk_clustertest import get_or_empty, httpd_pod, pod_ready, wait_until

from nbkube import examples
from nbkube.cluster import LocalCluster

pytestmark = pytest.mark.slow



def _manifests() -> str:
    parts = []
    for name in ("web-rc.yaml", "web-service.yaml"):
        with open(examples.path(f"rootless/{name}")) as f:
            parts.append(f.read())
    return "\n---\n".join(parts)


def _get(host: str, port: int) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/", timeout=3) as resp:
        return str(resp.read().decode().strip())


def _busybox_children(pod_net: str) -> list[int]:
    """httpd processes serving on an address of `pod_net` (the cluster's pods, by their command line)."""
    prefix = pod_net.split(".0.0/")[0].encode() + b"."
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        # our httpd children were started in sessions of their own, so match the command line
        if b"httpd" in cmd and prefix in cmd and fields[0] != "Z":
            found.append(int(entry))
    return [p for p in found if p != me]


def test_article_scenario_on_the_embedded_default(tmp_path: Any) -> None:
    cluster = LocalCluster(nodes=3, runtime="process", store="sqlite", data_dir=str(tmp_path), name="emb")
    try:
        cluster.apply(_manifests())
        pods = wait_until(
            lambda: (lambda ps: ps if len([p for p in ps if pod_ready(p)]) == 5 else None)(
                cluster.api.list("Pod", "default")[0]
            ),
            30,
            "5 ready pods",
        )
        block = cluster.address_block
        assert block is not None
        assert all(
            ipaddress.ip_address(p["status"]["podIP"]) in ipaddress.ip_network(block.pod_net) for p in pods
        )
        assert len({p["spec"]["nodeName"] for p in pods}) == 3
        names = {p["metadata"]["name"] for p in pods}
        svc = next(
            s for s in cluster.api.list("Service", "default")[0] if s["spec"].get("type") == "NodePort"
        )
        host, port = cluster.service_address(svc["metadata"]["name"])
        assert host.startswith("127.") and port == svc["spec"]["ports"][0]["port"]
        wait_until(
            lambda: (
                cluster.host_proxy is not None
                and cluster.host_proxy.runner.rules
                and all(r.backends for r in cluster.host_proxy.runner.rules)
                and len(cluster.host_proxy.runner.rules[0].backends) == 5
            ),
            10,
            "proxy has 5 backends",
        )
        hits = collections.Counter(_get(host, port) for _ in range(50))
        assert set(hits) == names and max(hits.values()) <= 2 * 10, hits
        for ip in cluster.node_addresses().values():
            assert _get(ip, 30001) in names
    finally:
        cluster.stop()
    assert _busybox_children(block.pod_net) == []
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=1)


def test_host_port_answers_on_the_pods_node_in_the_embedded_mode(tmp_path: Any) -> None:
    cluster = LocalCluster(nodes=2, runtime="process", store="sqlite", data_dir=str(tmp_path), name="embhp")
    try:
        node = "node-2"
        cluster.api.create(httpd_pod("hp", node, 8080, host_port=18081))
        node_ip = cluster.node_addresses()[node]
        wait_until(lambda: pod_ready(cluster.api.get("Pod", "hp", "default")), 30, "hostPort pod ready")

        def answer(ip: str) -> str:
            return get_or_empty(f"http://{ip}:18081/")

        assert wait_until(lambda: answer(node_ip), 10, f"{node_ip}:18081") == "hp"
        assert answer(cluster.node_addresses()["node-1"]) == ""  # the pod's node only
        cluster.api.delete("Pod", "hp", "default")
        wait_until(lambda: answer(node_ip) == "", 20, "hostPort closed after the pod went")
    finally:
        cluster.stop()


def test_a_privileged_pod_fails_on_the_process_runtime_with_the_field_named(tmp_path: Any) -> None:
    with LocalCluster(nodes=1, runtime="process", store="sqlite", data_dir=str(tmp_path), name="psa") as c:
        c.api.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "root"},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox",
                            "command": ["sleep", "60"],
                            "securityContext": {"privileged": True},
                        }
                    ]
                },
            }
        )
        wanted = "spec.containers[0].securityContext.privileged: Forbidden: the process runtime cannot run privileged containers"

        def failed() -> Any:
            status = c.api.get("Pod", "root", "default").get("status") or {}
            return status.get("phase") == "Failed" and status

        status = wait_until(failed, 20, "the pod to fail")
        assert status["message"] == f"pod default/root: {wanted}"
        events = c.api.list("Event", "default")[0]
        assert any(e["reason"] == "Failed" and wanted in e["message"] for e in events)
