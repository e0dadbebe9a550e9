"""`nbkube node join` on a "real machine": a Docker node in the host's own namespace joins a cluster.

The host plays the joining machine: its address on `nbk0` (10.240.0.1, which the local cluster's
nodes already reach) is the joined node's InternalIP, its pods sit on a bridge in the host's
namespace, and routes follow the Node objects both ways. Pod to pod across the two kinds of node
without NAT, the NodePort on the joined node, and nothing of the joined node left on the host after
it leaves. Needs root and dockerd (skipped otherwise; NBKUBE_REQUIRE_DOCKER=1 fails instead).
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from typing import Any

import pytest
from nbk_clustertest import get_or_empty, httpd_pod, pod_ready, wait_until

from nbkube.cluster import JoinedNode, LocalCluster
from nbkube.node.network.host import PODS_FORWARD_CHAIN

pytestmark = [pytest.mark.docker, pytest.mark.slow]

HOST_NODE_IP = "10.240.0.1"  # the host's side of nbk0: reachable from every local node


def _web_pod(name: str, node: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "joined-web"}},
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "web",
                    "image": "busybox",
                    "command": [
                        "sh",
                        "-c",
                        f"mkdir -p /www && echo {name} > /www/index.html && exec httpd -f -p 80 -h /www",
                    ],
                    "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1},
                }
            ],
        },
    }


def _ready(api: Any, name: str) -> dict | None:
    pod: dict = api.get("Pod", name, "default")
    return pod if pod_ready(pod) else None


def test_a_host_namespace_node_joins_and_pods_talk_across(tmp_path: Any, docker_client: Any) -> None:
    cluster = LocalCluster(
        nodes=2, runtime="docker", store="memory", profile="fast", data_dir=str(tmp_path / "c"), name="hj"
    )
    joined = None
    try:
        joined = JoinedNode(
            cluster.api, "edge-1", runtime="docker", node_ip=HOST_NODE_IP, state_dir=str(tmp_path / "edge")
        ).start()
        assert joined.network == "host" and joined.kit.net.netns is None
        wait_until(lambda: cluster._node_ready("edge-1"), 20, "edge-1 Ready")
        cluster.api.create(_web_pod("on-edge", "edge-1"))
        cluster.api.create(_web_pod("on-node", "node-1"))
        cluster.apply(
            "apiVersion: v1\nkind: Service\nmetadata: {name: joined-web}\nspec:\n  type: NodePort\n"
            "  selector: {app: joined-web}\n  ports: [{port: 8000, targetPort: 80, nodePort: 30555}]\n"
        )
        edge_pod = wait_until(lambda: _ready(cluster.api, "on-edge"), 60, "pod on edge-1 ready")
        node_pod = wait_until(lambda: _ready(cluster.api, "on-node"), 60, "pod on node-1 ready")
        assert edge_pod["status"]["podIP"].startswith(f"10.244.{joined.index}.")
        # pod on the joined machine -> pod on a local node, and back: no NAT either way
        edge_rt = joined.kit.runtime
        code, out = edge_rt.exec(
            edge_pod["metadata"]["uid"], "web", ["wget", "-qO-", f"http://{node_pod['status']['podIP']}/"]
        )  # type: ignore[attr-defined]
        assert code == 0 and out.strip() == "on-node", out
        node_rt = cluster.runtimes["node-1"]
        code, out = node_rt.exec(
            node_pod["metadata"]["uid"], "web", ["wget", "-qO-", f"http://{edge_pod['status']['podIP']}/"]
        )  # type: ignore[attr-defined]
        assert code == 0 and out.strip() == "on-edge", out
        # the joined node's NodePort answers, from its own address, with pods of both nodes
        seen = set()
        for _ in range(60):
            try:
                with urllib.request.urlopen(f"http://{HOST_NODE_IP}:30555/", timeout=2) as resp:
                    seen.add(resp.read().decode().strip())
            except OSError:
                time.sleep(0.1)
            if seen == {"on-edge", "on-node"}:
                break
        assert seen == {"on-edge", "on-node"}
        # the cluster's DNS, through the joined node's own proxy (kube-dns's ClusterIP)
        code, out = edge_rt.exec(edge_pod["metadata"]["uid"], "web", ["nslookup", "joined-web.default.svc.cluster.local"])  # type: ignore[attr-defined]
        svc_ip = cluster.api.get("Service", "joined-web", "default")["spec"]["clusterIP"]
        assert code == 0 and svc_ip in out, out
        # a hostPort on the joined machine: DNAT in the host's own nat table, to the pod's bridge
        cluster.api.create(httpd_pod("hostport-on-edge", "edge-1", 80, host_port=18090, root="/w"))
        url = f"http://{HOST_NODE_IP}:18090/"
        assert wait_until(lambda: get_or_empty(url), 60, f"{url} answering") == "hostport-on-edge"
        code, out = node_rt.exec(node_pod["metadata"]["uid"], "web", ["wget", "-qO-", url])  # type: ignore[attr-defined]
        assert code == 0 and out.strip() == "hostport-on-edge", out
    finally:
        if joined is not None:
            joined.stop()
        cluster.stop()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert "nbkh" not in links
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
    assert "10.244." not in routes and "10.96.0.0/12" not in routes
    for table in ("nat", "filter"):
        rules = subprocess.run(
            ["iptables-save", "-t", table], capture_output=True, text=True, check=True
        ).stdout
        assert "NBK-" not in rules and PODS_FORWARD_CHAIN not in rules, table
