"""Cluster DNS and Service variables on 2 Docker nodes: from inside a pod, Service names resolve
(`nslookup`, `wget http://web:8000/`), a StatefulSet's pods behind its headless Service resolve by
hostname (`db-2.db.default.svc.cluster.local`), and `WEB_SERVICE_HOST` is set (issue's "Done when").

Marked `docker` (root and a Docker daemon). Run under `flock /tmp/nbkube-docker.lock`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from nbk_clustertest import pod_ready, wait_until

from nbkube.cluster import LocalCluster

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SERVE = "mkdir -p /www && echo $(POD_NAME) > /www/index.html && exec httpd -f -p {port} -h /www"
POD_NAME_ENV = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]


def _web_rc() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"app": "web"},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "busybox",
                            "command": ["sh", "-c", SERVE.format(port=8000)],
                            "env": POD_NAME_ENV,
                            "ports": [{"containerPort": 8000, "name": "http"}],
                            "readinessProbe": {"httpGet": {"path": "/", "port": 8000}, "periodSeconds": 1},
                        }
                    ]
                },
            },
        },
    }


def _service(name: str, port: int, headless: bool = False) -> dict:
    spec: dict[str, Any] = {"selector": {"app": name}, "ports": [{"name": "http", "port": port, "targetPort": port}]}
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def _db_statefulset() -> dict:
    # a real StatefulSet: its controller gives pod db-N hostname db-N and subdomain db (the headless
    # Service), which is what makes db-N.db.default.svc.cluster.local resolve
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db",
            "replicas": 3,
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {
                    "containers": [
                        {
                            "name": "db",
                            "image": "busybox",
                            "command": ["sh", "-c", SERVE.format(port=80)],
                            "env": POD_NAME_ENV,
                            "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 1},
                        }
                    ]
                },
            },
        },
    }


CLIENT = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "client"},
    "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]},
}


def _ready(c: LocalCluster, selector: str) -> int:
    return len([p for p in c.api.list("Pod", "default", label_selector=selector)[0] if pod_ready(p)])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[LocalCluster]:
    data = tmp_path_factory.mktemp("dns-cluster")
    c = LocalCluster(nodes=2, runtime="docker", store="sqlite", profile="fast", data_dir=str(data), name="dkdns")
    try:
        c.start()
        c.api.create(_web_rc())
        c.api.create(_service("web", 8000))
        c.api.create(_service("db", 80, headless=True))
        c.api.create(_db_statefulset())
        wait_until(lambda: _ready(c, "app=web") == 2 and _ready(c, "app=db") == 3, 90, "web and db pods ready")
        c.api.create(CLIENT)  # after the Services: it gets their variables
        wait_until(lambda: pod_ready(c.api.get("Pod", "client", "default")), 60, "client pod ready")
        yield c
    finally:
        c.stop()


def _exec(c: LocalCluster, argv: list[str]) -> tuple[int, str]:
    pod = c.api.get("Pod", "client", "default")
    runtime = c.runtimes[pod["spec"]["nodeName"]]
    code, out = runtime.exec(pod["metadata"]["uid"], "c", argv)  # type: ignore[attr-defined]
    return int(code), str(out)


def test_kube_dns_service_is_at_the_conventional_address(cluster: LocalCluster) -> None:
    svc = cluster.api.get("Service", "kube-dns", "kube-system")
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    slices = cluster.api.list("EndpointSlice", "kube-system", label_selector="kubernetes.io/service-name=kube-dns")[0]
    assert slices and slices[0]["endpoints"][0]["addresses"] == [cluster.dns.address[0]]  # type: ignore[union-attr]


def test_resolv_conf_and_service_variables_in_the_pod(cluster: LocalCluster) -> None:
    code, out = _exec(cluster, ["cat", "/etc/resolv.conf"])
    assert code == 0 and "nameserver 10.96.0.10" in out, out
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in out
    assert "options ndots:5" in out
    web_ip = cluster.api.get("Service", "web", "default")["spec"]["clusterIP"]
    code, out = _exec(cluster, ["sh", "-c", "echo $WEB_SERVICE_HOST $WEB_SERVICE_PORT $WEB_PORT_8000_TCP_ADDR"])
    assert code == 0 and out.split() == [web_ip, "8000", web_ip], out


def test_service_names_resolve_and_reach_the_pods(cluster: LocalCluster) -> None:
    web_ip = cluster.api.get("Service", "web", "default")["spec"]["clusterIP"]
    code, out = _exec(cluster, ["nslookup", "web.default.svc.cluster.local"])
    assert code == 0 and web_ip in out, out
    web_pods = {p["metadata"]["name"] for p in cluster.api.list("Pod", "default", label_selector="app=web")[0]}
    seen = set()
    for _ in range(20):
        code, out = _exec(cluster, ["wget", "-qO-", "http://web:8000/"])
        assert code == 0, out
        seen.add(out.strip())
    assert seen == web_pods, seen  # both pods, through the ClusterIP the name resolved to


def test_statefulset_pod_names_resolve_to_their_pod(cluster: LocalCluster) -> None:
    db2 = cluster.api.get("Pod", "db-2", "default")
    code, out = _exec(cluster, ["nslookup", "db-2.db.default.svc.cluster.local"])
    assert code == 0 and db2["status"]["podIP"] in out, out
    code, out = _exec(cluster, ["wget", "-qO-", "http://db-2.db.default.svc.cluster.local/"])
    assert code == 0 and out.strip() == "db-2", out
    code, out = _exec(cluster, ["nslookup", "db.default.svc.cluster.local"])
    ips = {p["status"]["podIP"] for p in cluster.api.list("Pod", "default", label_selector="app=db")[0]}
    assert code == 0 and all(ip in out for ip in ips), out
    code, out = _exec(cluster, ["nslookup", "-type=SRV", "_http._tcp.db.default.svc.cluster.local"])
    assert code == 0 and "db-2.db.default.svc.cluster.local" in out and " 80 " in f" {out} ", out
    code, out = _exec(cluster, ["nslookup", "nothing.default.svc.cluster.local"])
    assert code != 0 or "NXDOMAIN" in out, out
