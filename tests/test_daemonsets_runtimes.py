"""DaemonSets on real runtimes: one Ready pod per node on 2 process nodes (no root needed) and on 2
Docker nodes (real containers; marked `docker`, run under the Docker lock), the scheduler binding
each pod through its node-name affinity; and on the process nodes a drain refused by the
DaemonSet's pods, then stopped by a PodDisruptionBudget it names, with the daemon pods left in place.
"""

from __future__ import annotations

from typing import Any

import pytest
from nbk_clustertest import pod_ready, wait_until

from nbkube.client.maintenance import DrainBlocked, DrainRefused, drain
from nbkube.cluster import LocalCluster

pytestmark = pytest.mark.slow

DAEMONSET = """apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: busybox, command: [sleep, "3600"]}]
"""
WEB = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web-pdb}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: web}}
"""


def _ready_on(cluster: LocalCluster, app: str) -> dict[str, bool]:
    pods = cluster.api.list("Pod", "default", label_selector=f"app={app}")[0]
    return {p["spec"].get("nodeName", ""): pod_ready(p) for p in pods}


def _ready_everywhere(cluster: LocalCluster) -> bool:
    status = cluster.api.get("DaemonSet", "agent", "default").get("status") or {}
    return status.get("numberReady") == 2 and _ready_on(cluster, "agent") == {"node-1": True, "node-2": True}


def test_daemonset_on_process_nodes_and_drain(tmp_path: Any) -> None:
    with LocalCluster(nodes=2, runtime="process", store="sqlite", profile="fast", data_dir=str(tmp_path)) as c:
        c.apply(DAEMONSET)
        assert wait_until(lambda: _ready_everywhere(c), 60, "a Ready daemon pod on both process nodes")
        c.apply(WEB)
        assert wait_until(
            lambda: (c.api.get("PodDisruptionBudget", "web-pdb", "default").get("status") or {}).get("currentHealthy")
            == 2,
            60,
            "the budget counting 2 healthy web pods",
        )
        with pytest.raises(DrainRefused, match="cannot delete DaemonSet-managed Pods"):
            drain(c.api, "node-1", timeout=5)
        with pytest.raises(DrainBlocked, match="web-pdb"):
            drain(c.api, "node-1", ignore_daemonsets=True, timeout=2)
        assert _ready_on(c, "agent") == {"node-1": True, "node-2": True}  # left in place


@pytest.mark.docker
def test_daemonset_on_docker_nodes(tmp_path: Any, docker_client: Any) -> None:
    with LocalCluster(nodes=2, runtime="docker", store="sqlite", profile="fast", data_dir=str(tmp_path), name="dsk") as c:
        c.apply(DAEMONSET)
        assert wait_until(lambda: _ready_everywhere(c), 120, "a Ready daemon pod on both Docker nodes")
        pods = c.api.list("Pod", "default", label_selector="app=agent")[0]
        for pod in pods:  # a real container answers on its node
            runtime = c.runtimes[pod["spec"]["nodeName"]]
            code, out = runtime.exec(pod["metadata"]["uid"], "agent", ["hostname"])  # type: ignore[attr-defined]
            assert code == 0 and out.strip() == pod["metadata"]["name"], out
