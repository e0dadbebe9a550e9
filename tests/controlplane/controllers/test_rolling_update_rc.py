"""The article's two-RC rolling update: step planning, bounds at every pod event and in the Event log,
the deployment key, renaming, -f input, bad input, and resuming after an interruption."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest
from nbk_workload_helpers import FakeKubelet, active_pods, rc_manifest, started, wait_for

from nbkube.api.meta import Obj, controller_of
from nbkube.client.informer import Informer, InformerFactory
from nbkube.controlplane.controllers.gc import GarbageCollector
from nbkube.controlplane.controllers.replication import ReplicationManager, is_ready
from nbkube.controlplane.controllers.rollingupdate import DEPLOYMENT_KEY, plan_step, rolling_update
from nbkube.errors import BadRequest, NotFound
from nbkube.registry.registry import Registry


def test_plan_step_one_at_a_time() -> None:
    # desired 3, surge 1, unavailable 0: up to 1, then old down once it is ready, and so on
    assert plan_step(3, 1, 0, (3, 3, 3), (0, 0, 0)) == ("up", 1)
    assert plan_step(3, 1, 0, (3, 3, 3), (1, 1, 0)) is None, "new pod not ready: wait"
    assert plan_step(3, 1, 0, (3, 3, 3), (1, 1, 1)) == ("down", 2)
    assert plan_step(3, 1, 0, (2, 3, 3), (1, 1, 1)) is None, "old pod not yet gone: no surge"
    assert plan_step(3, 1, 0, (2, 2, 2), (1, 1, 1)) == ("up", 2)
    assert plan_step(3, 1, 0, (0, 0, 0), (3, 3, 3)) is None
    # max unavailable 1 and no surge: old goes down first
    assert plan_step(3, 0, 1, (3, 3, 3), (0, 0, 0)) == ("down", 2)


@pytest.fixture
def cluster(api: Registry, factory: InformerFactory, kubelet: FakeKubelet) -> Iterator[FakeKubelet]:
    rc = ReplicationManager(api, factory)
    gc = GarbageCollector(api, factory, dependent_kinds=("Pod",))
    with started(factory, rc, gc):
        yield kubelet


class Observer:
    def __init__(self, api: Registry) -> None:
        self.inf = Informer(api, "Pod", label_selector="app=nginx")
        self.samples: list[tuple[int, int]] = []
        self.lock = threading.Lock()
        self.inf.add_handler(on_add=self._on, on_update=lambda o, n: self._on(n), on_delete=self._on)

    def _on(self, _p: Obj) -> None:
        pods = [
            p for p in self.inf.list() if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        with self.lock:
            self.samples.append((len(pods), sum(1 for p in pods if is_ready(p))))


def all_ready(api: Registry, n: int, image: str) -> bool:
    pods = active_pods(api)
    return len(pods) == n and all(is_ready(p) and p["spec"]["containers"][0]["image"] == image for p in pods)


def test_two_rc_rolling_update_keeps_bounds(api: Registry, cluster: FakeKubelet) -> None:
    desired = 4
    api.create(rc_manifest(replicas=desired))
    wait_for(lambda: all_ready(api, desired, "nginx:1.7.9"))
    obs = Observer(api)
    obs.inf.start()
    lines: list[str] = []
    try:
        assert obs.inf.wait_synced(5)
        start = len(obs.samples)
        final = rolling_update(
            api,
            "nginx",
            image="nginx:1.9.1",
            update_period=0.01,
            poll_interval=0.01,
            timeout=30,
            progress=lines.append,
        )
        wait_for(
            lambda: all_ready(api, desired, "nginx:1.9.1"),
            what="new pods",
            detail=lambda: [
                (
                    p["metadata"]["name"],
                    p["metadata"].get("labels"),
                    controller_of(p),
                    (p.get("status") or {}).get("phase"),
                )
                for p in active_pods(api)
            ],
        )
        wait_for(
            lambda: all((controller_of(p) or {}).get("name") == "nginx" for p in active_pods(api)),
            what="adoption by the renamed RC",
            detail=lambda: (
                [
                    (p["metadata"]["name"], p["metadata"].get("labels"), controller_of(p))
                    for p in active_pods(api)
                ],
                [
                    (r["metadata"], r["spec"]["selector"], r.get("status"))
                    for r in api.list("ReplicationController", "default")[0]
                ],
            ),
        )
    finally:
        obs.inf.stop()
    assert final["metadata"]["name"] == "nginx", "the new RC took the old name"
    (rc,) = api.list("ReplicationController", "default")[0]
    assert rc["spec"]["selector"][DEPLOYMENT_KEY] and rc["spec"]["replicas"] == desired
    events, _ = api.list("Event", "default")
    story = [
        (e["involvedObject"]["name"], e["reason"], e["message"])
        for e in sorted(events, key=lambda e: int(e["metadata"]["resourceVersion"]))
    ]
    for total, ready in obs.samples[start:]:
        assert total <= desired + 1, (obs.samples[start:], story)
        assert ready >= desired, (obs.samples[start:], story)
    # the Event log tells the same story at every step
    events, _ = api.list("Event", "default")
    steps = [e["message"] for e in events if e["reason"] == "RollingUpdate"]
    nums = [re.search(r"old \S+=(\d+), new \S+=(\d+), ready=(\d+)", m) for m in steps]
    scaled = [tuple(int(x) for x in m.groups()) for m in nums if m]
    assert len(scaled) == 2 * desired, steps
    for o, n, ready in scaled:
        assert o + n <= desired + 1 and ready >= desired
    assert any("Renamed" in line for line in lines)


def test_rolling_update_from_file_with_max_unavailable(api: Registry, cluster: FakeKubelet) -> None:
    api.create(rc_manifest(replicas=3))
    wait_for(lambda: all_ready(api, 3, "nginx:1.7.9"))
    new = rc_manifest(name="nginx-v2", replicas=3, image="nginx:2")
    final = rolling_update(
        api,
        "nginx",
        new_rc=new,
        max_unavailable=1,
        max_surge=0,
        update_period=0,
        poll_interval=0.01,
        timeout=30,
    )
    assert final["metadata"]["name"] == "nginx-v2"
    wait_for(lambda: all_ready(api, 3, "nginx:2"))
    with pytest.raises(NotFound):
        api.get("ReplicationController", "nginx", "default")


def test_bad_input_writes_nothing(api: Registry) -> None:
    api.create(rc_manifest(replicas=1))
    before = api.get("ReplicationController", "nginx", "default")
    with pytest.raises(BadRequest, match="is the image the RC already runs"):
        rolling_update(api, "nginx", image="nginx:1.7.9")
    with pytest.raises(BadRequest, match="exactly one of"):
        rolling_update(api, "nginx")
    with pytest.raises(BadRequest, match="cannot both be 0"):
        rolling_update(api, "nginx", image="x", max_surge=0, max_unavailable=0)
    with pytest.raises(BadRequest, match="name other than"):
        rolling_update(api, "nginx", new_rc=rc_manifest())
    assert api.get("ReplicationController", "nginx", "default") == before
    with pytest.raises(NotFound):
        rolling_update(api, "nope", image="x")


def test_interrupted_rolling_update_resumes(api: Registry, cluster: FakeKubelet) -> None:
    api.create(rc_manifest(replicas=3))
    wait_for(lambda: all_ready(api, 3, "nginx:1.7.9"))
    seen: list[str] = []

    def stop_after_three(line: str) -> None:
        seen.append(line)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rolling_update(
            api, "nginx", image="nginx:2", update_period=0, poll_interval=0.01, progress=stop_after_three
        )
    assert len(api.list("ReplicationController", "default")[0]) == 2
    lines: list[str] = []
    rolling_update(
        api, "nginx", image="nginx:2", update_period=0, poll_interval=0.01, timeout=30, progress=lines.append
    )
    assert lines[0].startswith("Continuing update of nginx")
    wait_for(lambda: all_ready(api, 3, "nginx:2"))
    (rc,) = api.list("ReplicationController", "default")[0]
    assert rc["metadata"]["name"] == "nginx"
