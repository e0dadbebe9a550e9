"""End to end on a LocalCluster of 3 sim nodes (real scheduler, node agents, every controller): the
article's two-RC rolling update and a Deployment rollout keep their bounds at every pod event, and
the Event log tells each step."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from nbk_workload_helpers import wait_for

from nbkube import examples
from nbkube.api.meta import Obj
from nbkube.client.events import events_dataframe
from nbkube.client.informer import Informer
from nbkube.cluster import LocalCluster
from nbkube.controlplane.controllers.replication import is_ready
from nbkube.controlplane.controllers.rollingupdate import rolling_update
from nbkube.registry.registry import Registry

ARTICLE_RC = Path(examples.path("nginx-rc.yaml"))


class Bounds:
    """Counts active and ready pods of one app at every pod event (in store order)."""

    def __init__(self, api: Registry, app: str) -> None:
        self.inf = Informer(api, "Pod", label_selector=f"app={app}")
        self.lock = threading.Lock()
        self.samples: list[tuple[int, int]] = []
        self.inf.add_handler(on_add=self._on, on_update=lambda o, n: self._on(n), on_delete=self._on)

    def _on(self, _p: Obj) -> None:
        pods = [
            p for p in self.inf.list() if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        with self.lock:
            self.samples.append((len(pods), sum(1 for p in pods if is_ready(p))))


def ready_with(api: Registry, app: str, image: str, n: int) -> bool:
    pods = [p for p in api.list("Pod", "default", label_selector=f"app={app}")[0]]
    return len(pods) == n and all(is_ready(p) and p["spec"]["containers"][0]["image"] == image for p in pods)


@pytest.mark.slow
def test_rollouts_on_sim_nodes(tmp_path: Path) -> None:
    with LocalCluster(nodes=3, store="sqlite", data_dir=str(tmp_path), profile="fast") as c:
        c.apply(ARTICLE_RC.read_text())
        wait_for(lambda: ready_with(c.api, "nginx", "nginx", 5), timeout=20, what="article RC running")
        bounds = Bounds(c.api, "nginx")
        bounds.inf.start()
        try:
            assert bounds.inf.wait_synced(5)
            start = len(bounds.samples)
            rolling_update(
                c.api,
                "nginx-test-controller",
                image="nginx:1.9.1",
                update_period=0.05,
                poll_interval=0.02,
                timeout=60,
            )
            wait_for(lambda: ready_with(c.api, "nginx", "nginx:1.9.1", 5), timeout=20, what="RC rolled")
        finally:
            bounds.inf.stop()
        for total, ready in bounds.samples[start:]:
            assert total <= 5 + 1 and ready >= 5, bounds.samples[start:]
        df = events_dataframe(c.api, "default")
        steps = df[df.reason == "RollingUpdate"].message.tolist()
        parsed = [re.search(r"old \S+=(\d+), new \S+=(\d+), ready=(\d+)", m) for m in steps]
        nums = [tuple(int(x) for x in m.groups()) for m in parsed if m]
        assert len(nums) == 10 and all(o + n <= 6 and r >= 5 for o, n, r in nums), steps

        deploy = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": 4,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "busybox:1"}]},
                },
            },
        }
        c.api.create(deploy)
        wait_for(lambda: ready_with(c.api, "web", "busybox:1", 4), timeout=20, what="deployment up")
        bounds = Bounds(c.api, "web")
        bounds.inf.start()
        try:
            assert bounds.inf.wait_synced(5)
            start = len(bounds.samples)
            c.api.patch(
                "Deployment",
                "web",
                "default",
                {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "busybox:2"}]}}}},
            )
            wait_for(lambda: ready_with(c.api, "web", "busybox:2", 4), timeout=20, what="deployment rolled")
        finally:
            bounds.inf.stop()
        # 25% of 4: one surge pod, one unavailable
        for total, ready in bounds.samples[start:]:
            assert total <= 5 and ready >= 3, bounds.samples[start:]
        df = events_dataframe(c.api, "default")
        scaling = df[(df.reason == "ScalingReplicaSet") & (df.name == "web")].message.tolist()
        state: dict[str, int] = {}
        for m in scaling:
            hit = re.match(r"Scaled (up|down) replica set (\S+) to (\d+)", m)
            assert hit, m
            state[hit.group(2)] = int(hit.group(3))
            assert sum(state.values()) <= 5, scaling
        assert len(scaling) >= 4
