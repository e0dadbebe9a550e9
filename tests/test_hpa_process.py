"""Metrics and autoscaling end to end on the process runtime, through the real kubectl: `kubectl top
pods|nodes` print the figures the node agents read from /proc, `kubectl autoscale` (an autoscaling/v1
object, converted) makes an HPA that scales a CPU-busy Deployment from 1 to at least 2 Ready replicas,
and `kubectl get hpa` prints upstream's columns. A remote agent's report (a PUT through the API) shows
in `kubectl top nodes` too."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import Any

from nbk_clustertest import pod_ready, wait_until

from nbkube.apiserver import serve
from nbkube.client import metrics as metrics_client
from nbkube.client.kubeconfig import load_kubeconfig
from nbkube.client.rest import RestClient
from nbkube.cluster import LocalCluster
from nbkube.registry.metrics import ContainerUsage, NodeUsage, PodUsage

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
BUSY = "while true; do :; done"


def _run(kubeconfig: str, home: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBECTL, "--kubeconfig", kubeconfig, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "HOME": home},
    )


def _kubectl(kubeconfig: str, home: str, *args: str) -> str:
    proc = _run(kubeconfig, home, *args)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()[1:]]


def test_kubectl_top_and_an_hpa_scaling_a_busy_deployment(tmp_path: Any) -> None:
    cluster = LocalCluster(nodes=2, runtime="process", store="sqlite", data_dir=str(tmp_path), name="hpaproc")
    cluster.start()
    server = serve(cluster)
    try:
        kc = server.write_kubeconfig(str(tmp_path / "kubeconfig"))

        def k(*args: str) -> str:
            return _kubectl(kc, str(tmp_path), *args)

        def top_rows(*args: str) -> list[list[str]]:
            # "metrics not available yet" until the node has read the pod twice (one period)
            proc = _run(kc, str(tmp_path), "top", *args)
            return _rows(proc.stdout) if proc.returncode == 0 else []

        k("create", "deployment", "web", "--image=busybox", "--", "sh", "-c", BUSY)
        k("set", "resources", "deployment", "web", "--requests=cpu=50m")
        wait_until(
            lambda: [p for p in cluster.api.list("Pod", "default")[0] if pod_ready(p)], 30, "a Ready web pod"
        )
        top = wait_until(lambda: top_rows("pods", "-l", "app=web"), 30, "kubectl top pods rows")
        assert re.fullmatch(r"\d+m", top[0][1]) and re.fullmatch(r"\d+Mi", top[0][2]), top
        assert int(top[0][1][:-1]) > 50, f"a busy loop uses more than its 50m request: {top}"
        nodes = wait_until(lambda: top_rows("nodes"), 30, "kubectl top nodes rows")
        assert {r[0] for r in nodes} == {"node-1", "node-2"} and all(re.fullmatch(r"\d+m", r[1]) for r in nodes)
        one = k("top", "pod", top[0][0], "--containers")
        assert top[0][0] in one and re.search(r"\bbusybox\s+\d+m\s+\d+Mi", one), one  # the container row (kubectl create names it after the image)
        assert "node-1" in k("top", "node", "node-1")
        assert top[0][0] in k("top", "pods", "-A")
        raw = json.loads(k("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/{top[0][0]}"))
        assert raw["kind"] == "PodMetrics" and raw["containers"][0]["usage"]["cpu"].endswith("n")

        k("autoscale", "deployment", "web", "--cpu-percent=50", "--min=1", "--max=3")
        v1 = json.loads(k("get", "--raw", "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/web"))
        assert v1["apiVersion"] == "autoscaling/v1" and v1["spec"]["targetCPUUtilizationPercentage"] == 50

        def ready_replicas() -> int:
            pods = cluster.api.list("Pod", "default", label_selector="app=web")[0]
            return sum(1 for p in pods if pod_ready(p) and not p["metadata"].get("deletionTimestamp"))

        wait_until(lambda: ready_replicas() >= 2, 60, "the HPA scales web to >= 2 Ready replicas")
        hpa = cluster.api.get("HorizontalPodAutoscaler", "web", "default")
        assert hpa["status"]["desiredReplicas"] >= 2 and hpa["status"]["lastScaleTime"]
        out = k("get", "hpa")
        header = out.splitlines()[0].split()
        assert header == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
        row = out.splitlines()[1]
        assert "Deployment/web" in row and re.search(r"cpu: (\d+|<unknown>)%?/50%", row), row
        events = k("get", "events", "--field-selector", "reason=SuccessfulRescale", "-o", "name")
        assert events.strip()

        # a remote agent's report arrives through the API (a PUT) and shows as any node's
        rest = RestClient(load_kubeconfig(kc))
        now = cluster.clock.now()
        metrics_client.report(
            rest,
            NodeUsage("remote-1", now, 10.0, 250_000_000, 64 * 1024 * 1024),
            [PodUsage("default", "remote-pod", now, 10.0, (ContainerUsage("c", 250_000_000, 64 * 1024 * 1024),))],
        )
        remote = [r for r in _rows(k("top", "nodes")) if r[0] == "remote-1"]
        assert remote and remote[0][1] == "250m" and "64Mi" in remote[0], remote
        assert [m["metadata"]["name"] for m in metrics_client.pod_metrics(rest, "default", "app=none")] == []
    finally:
        server.stop()
        cluster.stop()
