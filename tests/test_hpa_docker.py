"""Metrics and autoscaling on 2 Docker nodes: the engine's stats reach `kubectl top`, and an HPA
scales a CPU-busy Deployment from 1 to 2 Ready replicas (the issue's "Done when").

Marked `docker`: needs root and a Docker daemon; run under the Docker lock
(`flock /tmp/nbkube-docker.lock`). The busy containers are capped at 200m each and the HPA at 2
replicas, so the load on the shared machine stays bounded.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

import pytest
from nbk_clustertest import pod_ready, wait_until

from nbkube.apiserver import serve
from nbkube.client import metrics as metrics_client
from nbkube.cluster import LocalCluster

pytestmark = [pytest.mark.docker, pytest.mark.slow]

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
BUSY = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "busy", "namespace": "default"},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "busy"}},
        "template": {
            "metadata": {"labels": {"app": "busy"}},
            "spec": {
                "containers": [
                    {
                        "name": "busy",
                        "image": "busybox",
                        "command": ["sh", "-c", "while true; do :; done"],
                        "resources": {"requests": {"cpu": "50m"}, "limits": {"cpu": "200m"}},
                    }
                ]
            },
        },
    },
}
HPA = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "busy", "namespace": "default"},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "busy"},
        "minReplicas": 1,
        "maxReplicas": 2,
        "metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}
        ],
    },
}


def test_docker_stats_in_kubectl_top_and_an_hpa_scaling_to_two(tmp_path: Any, docker_client: Any) -> None:
    cluster = LocalCluster(nodes=2, runtime="docker", store="sqlite", profile="fast", data_dir=str(tmp_path), name="hpadk")
    cluster.start()
    server = serve(cluster)
    try:
        kc = server.write_kubeconfig(str(tmp_path / "kubeconfig"))
        cluster.api.create(BUSY)
        wait_until(
            lambda: [p for p in cluster.api.list("Pod", "default", label_selector="app=busy")[0] if pod_ready(p)],
            90,
            "a Ready busy pod",
        )
        sample = wait_until(lambda: metrics_client.pod_metrics(cluster.api, "default", "app=busy"), 30, "PodMetrics")
        cpu = sample[0]["containers"][0]["usage"]["cpu"]
        assert cpu.endswith("n") and int(cpu[:-1]) > 50_000_000, sample  # more than its 50m request

        def top() -> str:
            proc = subprocess.run(
                [KUBECTL, "--kubeconfig", kc, "top", "pods"], capture_output=True, text=True, timeout=30,
                env={**os.environ, "HOME": str(tmp_path)},
            )  # fmt: skip
            return proc.stdout if proc.returncode == 0 else ""

        out = wait_until(top, 30, "kubectl top pods")
        assert re.search(r"busy-\S+\s+\d+m\s+\d+Mi", out), out
        cluster.api.create(HPA)

        def ready() -> int:
            pods = cluster.api.list("Pod", "default", label_selector="app=busy")[0]
            return sum(1 for p in pods if pod_ready(p) and not p["metadata"].get("deletionTimestamp"))

        wait_until(lambda: ready() >= 2, 90, "the HPA scales busy to 2 Ready replicas")
        status = cluster.api.get("HorizontalPodAutoscaler", "busy", "default")["status"]
        assert status["desiredReplicas"] == 2
    finally:
        server.stop()
        cluster.stop()
