"""The HPA controller over a registry, with a fake clock and a fake metrics source: it scales the
target's spec.replicas, writes status and conditions as upstream, holds a scale-down for the
stabilization window, reports missing metrics, honours min/max and resyncs every sync period."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from nbk_workload_helpers import wait_for

from nbkube.api.meta import Obj
from nbkube.client.informer import InformerFactory
from nbkube.clock import FakeClock, rfc3339
from nbkube.controlplane.controllers.hpa import HorizontalPodAutoscalerController
from nbkube.controlplane.manager import controller_classes
from nbkube.controlplane.profiles import get_profile
from nbkube.registry.registry import Registry

LABELS = {"app": "web"}


class FakeMetrics:
    """PodMetrics from a dict pod name -> CPU millicores, stamped with the fake clock's time."""

    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.usage: dict[str, int] = {}

    def __call__(self, namespace: str) -> list[Obj]:
        return [
            {
                "metadata": {"name": name, "namespace": namespace},
                "timestamp": rfc3339(self.clock.now() - 1),
                "window": "15s",
                "containers": [{"name": "c", "usage": {"cpu": f"{m}m", "memory": "1Mi"}}],
            }
            for name, m in self.usage.items()
        ]


def _replica_set(replicas: int) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }


def _pod(api: Registry, name: str, clock: FakeClock) -> None:
    long_ago = rfc3339(clock.now() - 1000)
    pod = api.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": LABELS},
            "spec": {
                "nodeName": "n1",
                "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}],
            },
        }
    )
    pod["status"] = {
        "phase": "Running",
        "startTime": long_ago,
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": long_ago}],
    }
    api.update_status(pod)


def _hpa(min_replicas: int = 1, max_replicas: int = 10, **spec: Any) -> Obj:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web"},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}
            ],
            **spec,
        },
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics(clock: FakeClock) -> FakeMetrics:
    return FakeMetrics(clock)


def _setup(api: Registry, clock: FakeClock, replicas: int, hpa: Obj) -> None:
    rs = api.create(_replica_set(replicas))
    rs["status"] = {"replicas": replicas}
    api.update_status(rs)
    for i in range(replicas):
        _pod(api, f"web-{i}", clock)
    api.create(hpa)


@pytest.fixture
def make(
    api: Registry, factory: InformerFactory, clock: FakeClock, metrics: FakeMetrics
) -> Iterator[Any]:
    made: list[HorizontalPodAutoscalerController] = []

    def build(replicas: int, hpa: Obj) -> HorizontalPodAutoscalerController:
        _setup(api, clock, replicas, hpa)
        c = HorizontalPodAutoscalerController(api, factory, clock=clock, profile=get_profile("kubernetes"), metrics=metrics)
        factory.start_all()
        assert factory.wait_all_synced(5)
        wait_for(
            lambda: sum((p.get("status") or {}).get("phase") == "Running" for p in c.pods.list()) == replicas
            and c.hpas.get("default/web"),
            what="caches with the running pods",
        )
        made.append(c)
        return c

    yield build
    for c in made:
        c.stop()


def _spec_replicas(api: Registry) -> int:
    return int(api.get("ReplicaSet", "web", "default")["spec"]["replicas"])


def _conditions(api: Registry) -> dict[str, tuple[str, str]]:
    status = api.get("HorizontalPodAutoscaler", "web", "default")["status"]
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_scale_up_writes_target_status_conditions_and_event(api: Registry, make: Any, metrics: FakeMetrics) -> None:
    c = make(2, _hpa())
    metrics.usage = {"web-0": 90, "web-1": 90}  # 90% against 50%: ceil(1.8 * 2) = 4
    c.reconcile("default/web")
    assert _spec_replicas(api) == 4
    status = api.get("HorizontalPodAutoscaler", "web", "default")["status"]
    assert status["currentReplicas"] == 2 and status["desiredReplicas"] == 4
    assert status["currentMetrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "current": {"averageValue": "90m", "averageUtilization": 90}}}
    ]
    assert status["lastScaleTime"]
    conds = _conditions(api)
    assert conds["AbleToScale"] == ("True", "SucceededRescale")
    assert conds["ScalingActive"] == ("True", "ValidMetricFound")
    assert conds["ScalingLimited"] == ("False", "DesiredWithinRange")
    reasons = [e["reason"] for e in api.list("Event", "default")[0]]
    assert "SuccessfulRescale" in reasons


def test_scale_up_is_capped_by_max_replicas(api: Registry, make: Any, metrics: FakeMetrics) -> None:
    c = make(2, _hpa(max_replicas=3))
    metrics.usage = {"web-0": 200, "web-1": 200}
    c.reconcile("default/web")
    assert _spec_replicas(api) == 3
    assert _conditions(api)["ScalingLimited"] == ("True", "TooManyReplicas")


def test_scale_down_waits_for_the_stabilization_window(
    api: Registry, make: Any, metrics: FakeMetrics, clock: FakeClock
) -> None:
    c = make(2, _hpa())
    metrics.usage = {"web-0": 50, "web-1": 50}  # on target: recommend 2
    c.reconcile("default/web")
    assert _spec_replicas(api) == 2
    metrics.usage = {"web-0": 5, "web-1": 5}  # recommend 1
    clock.advance(60)
    c.reconcile("default/web")
    assert _spec_replicas(api) == 2
    assert _conditions(api)["AbleToScale"] == ("True", "ScaleDownStabilized")
    clock.advance(250)  # 310 s after the recommendation of 2
    c.reconcile("default/web")
    assert _spec_replicas(api) == 1


def test_missing_metrics_make_scaling_inactive(api: Registry, make: Any, metrics: FakeMetrics) -> None:
    c = make(2, _hpa())
    metrics.usage = {}
    c.reconcile("default/web")
    assert _spec_replicas(api) == 2
    status, reason = _conditions(api)["ScalingActive"]
    assert (status, reason) == ("False", "FailedGetResourceMetric")
    reasons = [e["reason"] for e in api.list("Event", "default")[0]]
    assert {"FailedGetResourceMetric", "FailedComputeMetricsReplicas"} <= set(reasons)
    c.reconcile("default/web")  # the same failure at the next sync: no second event
    assert [e["reason"] for e in api.list("Event", "default")[0]] == reasons


def test_below_min_replicas_is_raised_without_metrics(api: Registry, make: Any, metrics: FakeMetrics) -> None:
    c = make(1, _hpa(min_replicas=3))
    c.reconcile("default/web")
    assert _spec_replicas(api) == 3
    assert api.get("HorizontalPodAutoscaler", "web", "default")["status"]["desiredReplicas"] == 3


def test_missing_target_is_reported(api: Registry, factory: InformerFactory, clock: FakeClock, metrics: FakeMetrics) -> None:
    api.create(_hpa())
    c = HorizontalPodAutoscalerController(api, factory, clock=clock, metrics=metrics)
    factory.start_all()
    assert factory.wait_all_synced(5)
    wait_for(lambda: c.hpas.get("default/web"), what="hpa cache")
    try:
        c.reconcile("default/web")
        assert _conditions(api)["AbleToScale"] == ("False", "FailedGetScale")
    finally:
        c.stop()


def test_resyncs_every_sync_period_on_the_injected_clock(
    api: Registry, make: Any, metrics: FakeMetrics, clock: FakeClock
) -> None:
    c = make(2, _hpa())
    metrics.usage = {"web-0": 50, "web-1": 50}
    c.start()
    wait_for(lambda: (api.get("HorizontalPodAutoscaler", "web", "default").get("status") or {}).get("conditions"), what="first sync")
    assert c.sync_period == 15.0
    metrics.usage = {"web-0": 100, "web-1": 100}  # now 200%: 4 replicas at the next sync
    clock.advance(15.1)
    wait_for(lambda: _spec_replicas(api) == 4, what="the resync after one sync period")


def test_the_manager_runs_it_with_the_profiles_period() -> None:
    assert HorizontalPodAutoscalerController in controller_classes()
    assert get_profile("kubernetes").hpa_sync_period == 15.0
    assert get_profile("fast").hpa_sync_period < 15.0
