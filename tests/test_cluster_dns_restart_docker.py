"""Cluster DNS after a restart on the same store: kube-dns is found, not re-created, and its
Endpoints follow the server's new port. A module of its own because Docker node names are claimed
machine-wide (`node/kit.py`): it must not run while test_cluster_dns_docker.py's cluster holds node-1.

Marked `docker` (root and a Docker daemon). Run under `flock /tmp/nbkube-docker.lock`.
"""

from __future__ import annotations

from typing import Any

import pytest
from nbk_clustertest import pod_ready, wait_until

from nbkube.cluster import LocalCluster

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_a_restarted_cluster_serves_dns_again(tmp_path: Any, docker_client: Any) -> None:
    def start() -> LocalCluster:
        c = LocalCluster(nodes=1, runtime="docker", store="sqlite", profile="fast", data_dir=str(tmp_path), name="dkrs")
        c.start()
        return c

    start().stop()
    c = start()  # kube-dns is in the store already: found, not re-created
    try:
        assert c.dns is not None
        ep = c.api.get("Endpoints", "kube-dns", "kube-system")
        assert {p["port"] for p in ep["subsets"][0]["ports"]} == {c.dns.address[1]}
        c.api.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "client"},
                "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]},
            }
        )
        wait_until(lambda: pod_ready(c.api.get("Pod", "client", "default")), 60, "client pod ready")
        pod = c.api.get("Pod", "client", "default")
        runtime = c.runtimes[pod["spec"]["nodeName"]]
        argv = ["nslookup", "kube-dns.kube-system.svc.cluster.local"]
        code, out = runtime.exec(pod["metadata"]["uid"], "c", argv)  # type: ignore[attr-defined]
        assert code == 0 and "10.96.0.10" in str(out).split("Name:")[-1], out
    finally:
        c.stop()
