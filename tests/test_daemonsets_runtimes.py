"""DaemonSets on real runtimes: one Ready pod per node on 2 process nodes (no root needed) and on 2
Docker nodes (real containers; marked `docker`, run under the Docker lock), the scheduler binding
each pod through its node-name affinity. On the process nodes a drain is refused by the DaemonSet's
pods, then stopped by a PodDisruptionBudget it names; on the Docker nodes the same through the real
kubectl (`rollout status`, `drain --ignore-daemonsets` stopped with the budget's name). The daemon
pods stay in place.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest
from nbk_clustertest import pod_ready, wait_until
from nbk_daemonsets import DAEMONSET, WEB, WEB_PDB

from nbkube.apiserver import serve
from nbkube.client.maintenance import DrainBlocked, DrainRefused, drain
from nbkube.cluster import LocalCluster

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "apiserver"))

from nbk_apitest import KUBECTL, Kubectl  # noqa: E402

pytestmark = pytest.mark.slow

WEB_WITH_BUDGET = WEB + "---\n" + WEB_PDB


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
        c.apply(WEB_WITH_BUDGET)
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
@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_daemonset_and_budget_on_docker_nodes_through_kubectl(tmp_path: Any, docker_client: Any) -> None:
    with LocalCluster(nodes=2, runtime="docker", store="sqlite", profile="fast", data_dir=str(tmp_path / "c"), name="dsk") as c:
        srv = serve(c)
        try:
            home = tmp_path / "home"
            home.mkdir()
            kc = Kubectl(srv.write_kubeconfig(str(tmp_path / "kubeconfig")), str(home))
            kc.ok("apply", "-f", "-", stdin=DAEMONSET)
            out = kc.ok("rollout", "status", "ds/agent", "--timeout=120s", timeout=150)
            assert 'daemon set "agent" successfully rolled out' in out
            assert _ready_everywhere(c)
            for pod in c.api.list("Pod", "default", label_selector="app=agent")[0]:  # real containers
                runtime = c.runtimes[pod["spec"]["nodeName"]]
                code, text = runtime.exec(pod["metadata"]["uid"], "agent", ["hostname"])  # type: ignore[attr-defined]
                assert code == 0 and text.strip() == pod["metadata"]["name"], text
            kc.ok("apply", "-f", "-", stdin=WEB_WITH_BUDGET)
            assert wait_until(
                lambda: kc.ok("get", "pdb", "web-pdb", "-o", "jsonpath={.status.currentHealthy}") == "2",
                120,
                "the budget counting 2 healthy web pods",
            )
            victim = kc.ok("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].spec.nodeName}")
            blocked = kc("drain", victim, "--ignore-daemonsets", "--timeout=5s", timeout=60)
            assert blocked.returncode != 0 and "web-pdb" in blocked.stderr, blocked.stderr
            assert _ready_on(c, "agent") == {"node-1": True, "node-2": True}
        finally:
            srv.stop()
