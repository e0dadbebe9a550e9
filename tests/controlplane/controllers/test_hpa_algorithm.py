"""The HPA's arithmetic against upstream's rules: tolerance, unready/missing pods, stabilization, policies, limits."""

from __future__ import annotations

import pytest

from nbkube.controlplane.controllers.hpa_algorithm import (
    History,
    MetricError,
    PodSample,
    behavior_with_defaults,
    limit_with_behavior,
    limit_without_behavior,
    resource_replicas,
    value_replicas,
)

NOW = 10_000.0


def pod(name: str, usage: int | None, request: int | None = 100, **kw: object) -> PodSample:
    base: dict[str, object] = {
        "start_time": NOW - 1000,
        "ready": True,
        "ready_transition": NOW - 990,
        "metric_time": NOW - 5,
        "metric_window": 15.0,
    }
    base.update(kw)
    return PodSample(name=name, usage=usage, request=request, **base)  # type: ignore[arg-type]


def test_scale_up_to_ceiling_of_ratio() -> None:
    # 2 pods at 90% of request, target 50%: ratio 1.8 -> ceil(1.8 * 2) = 4
    got = resource_replicas(2, [pod("a", 90), pod("b", 90)], 50, NOW)
    assert (got.replicas, got.utilization, got.average_value) == (4, 90, 90)


def test_within_tolerance_keeps_current() -> None:
    # 54% against 50%: ratio 1.08, within 0.1
    assert resource_replicas(3, [pod("a", 54), pod("b", 54), pod("c", 54)], 50, NOW).replicas == 3
    # 56%: ratio 1.12, outside: ceil(1.12 * 3) = 4
    assert resource_replicas(3, [pod("a", 56), pod("b", 56), pod("c", 56)], 50, NOW).replicas == 4


def test_scale_down() -> None:
    got = resource_replicas(4, [pod(n, 10) for n in "abcd"], 50, NOW)
    assert got.replicas == 1  # ratio 0.2 * 4 ready = 0.8 -> 1


def test_missing_metrics_count_as_full_request_when_scaling_down() -> None:
    # a, b at 10%, c missing: scale down would go to 1, but c counts as 100% -> ratio (10+10+100)/300/0.5 = 0.8
    got = resource_replicas(3, [pod("a", 10), pod("b", 10), pod("c", None)], 50, NOW)
    assert got.replicas == 3  # ceil(0.8 * 3) = 3 (not 1)


def test_missing_metrics_count_as_zero_when_scaling_up() -> None:
    # a at 100%, b missing: ratio 2.0; b as 0 -> (100+0)/200/0.5 = 1.0 -> within tolerance: keep
    assert resource_replicas(2, [pod("a", 100), pod("b", None)], 50, NOW).replicas == 2
    # a at 200%: (200+0)/200/0.5 = 2.0 -> ceil(2 * 2) = 4
    assert resource_replicas(2, [pod("a", 200, request=100), pod("b", None)], 50, NOW).replicas == 4


def test_unready_pods_count_as_zero_when_scaling_up() -> None:
    young = {"start_time": NOW - 10, "ready": False, "ready_transition": NOW - 10}
    # a at 150%, b not ready yet (its metric ignored): recomputed (150+0)/200/0.5 = 1.5 -> 3
    got = resource_replicas(2, [pod("a", 150), pod("b", 400, **young)], 50, NOW)
    assert got.replicas == 3
    # scaling down ignores unready pods entirely: a alone at 10% -> ceil(0.2 * 1) = 1
    assert resource_replicas(2, [pod("a", 10), pod("b", 400, **young)], 50, NOW).replicas == 1


def test_metric_taken_before_ready_is_unready_in_initialization() -> None:
    # started 60 s ago, Ready 20 s ago, but the sample's window began before that: unready
    early = {"start_time": NOW - 60, "ready": True, "ready_transition": NOW - 20, "metric_time": NOW - 10}
    with pytest.raises(MetricError, match="did not receive metrics"):
        resource_replicas(1, [pod("a", 300, **early)], 50, NOW)
    # the same pod measured after its Ready transition counts
    late = {**early, "metric_time": NOW - 1, "metric_window": 5.0}
    assert resource_replicas(1, [pod("a", 300, **late)], 50, NOW).replicas == 6


def test_pending_failed_and_deleted_pods() -> None:
    pods = [pod("a", 100), pod("b", None, phase="Pending"), pod("c", 999, phase="Failed"), pod("d", 999, deleted=True)]
    # a at 100% (ratio 2); b Pending is unready -> 0: (100+0)/200/0.5 = 1.0: keep 2
    assert resource_replicas(2, pods, 50, NOW).replicas == 2


def test_errors_name_the_cause() -> None:
    with pytest.raises(MetricError, match="no pods"):
        resource_replicas(1, [], 50, NOW)
    with pytest.raises(MetricError, match="missing request"):
        resource_replicas(1, [pod("a", 10, request=None)], 50, NOW)
    with pytest.raises(MetricError, match="did not receive metrics"):
        resource_replicas(1, [pod("a", None)], 50, NOW)


def test_average_value_target() -> None:
    # 3 pods at 300m each, target 200m -> ratio 1.5 -> ceil(4.5) = 5
    assert value_replicas(3, [pod(n, 300) for n in "abc"], 200, NOW).replicas == 5
    assert value_replicas(3, [pod(n, 210) for n in "abc"], 200, NOW).replicas == 3  # 1.05: tolerance


def test_without_behavior_stabilizes_scale_down_for_300s() -> None:
    h = History()
    first = limit_without_behavior(h, 4, 4, 1, 10, NOW)
    assert (first.replicas, first.able_reason) == (4, "ReadyForNewScale")
    # 100 s later the metric says 1: the recommendation of 4 is within the window
    held = limit_without_behavior(h, 4, 1, 1, 10, NOW + 100)
    assert (held.replicas, held.able_reason) == (4, "ScaleDownStabilized")
    # 301 s after the 4, only recommendations of 1 remain
    assert limit_without_behavior(h, 4, 1, 1, 10, NOW + 301).replicas == 1


def test_without_behavior_scale_up_cap_and_limits() -> None:
    h = History()
    capped = limit_without_behavior(h, 1, 10, 1, 10, NOW)
    assert (capped.replicas, capped.limit_reason) == (4, "ScaleUpLimit")  # max(2 * 1, 4)
    top = limit_without_behavior(History(), 5, 20, 1, 8, NOW)
    assert (top.replicas, top.limit_reason) == (8, "TooManyReplicas")
    low = limit_without_behavior(History(), 3, 1, 2, 8, NOW)
    assert (low.replicas, low.limit_reason) == (2, "TooFewReplicas")
    ok = limit_without_behavior(History(), 2, 3, 1, 8, NOW)
    assert (ok.replicas, ok.limit_reason, ok.limited) == (3, "DesiredWithinRange", False)


def test_behavior_defaults() -> None:
    b = behavior_with_defaults({})
    assert b is not None
    assert b["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert [p["type"] for p in b["scaleUp"]["policies"]] == ["Pods", "Percent"]
    assert "stabilizationWindowSeconds" not in b["scaleDown"]
    assert behavior_with_defaults(None) is None


def test_behavior_scale_up_policies_max_and_min() -> None:
    # default policies: +4 pods or +100% per 15 s, Max: from 10, max(14, 20) = 20
    b = behavior_with_defaults({})
    assert b is not None
    got = limit_with_behavior(History(), b, 10, 50, 1, 100, NOW)
    assert (got.replicas, got.limit_reason) == (20, "ScaleUpLimit")
    b_min = behavior_with_defaults({"scaleUp": {"selectPolicy": "Min"}})
    assert b_min is not None
    assert limit_with_behavior(History(), b_min, 10, 50, 1, 100, NOW).replicas == 14
    off = behavior_with_defaults({"scaleUp": {"selectPolicy": "Disabled"}})
    assert off is not None
    assert limit_with_behavior(History(), off, 10, 50, 1, 100, NOW).replicas == 10


def test_behavior_rate_counts_events_in_the_period() -> None:
    b = behavior_with_defaults({"scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}})
    assert b is not None
    h = History()
    first = limit_with_behavior(h, b, 1, 10, 1, 20, NOW)
    assert first.replicas == 3
    h.scaled(b, 1, 3, NOW)
    # 30 s later the period still holds +2: the period began at 1, so at most 3
    assert limit_with_behavior(h, b, 3, 10, 1, 20, NOW + 30).replicas == 3
    # after the period: 3 + 2
    assert limit_with_behavior(h, b, 3, 10, 1, 20, NOW + 61).replicas == 5


def test_behavior_scale_down_window_and_policy() -> None:
    b = behavior_with_defaults(
        {"scaleDown": {"stabilizationWindowSeconds": 60, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 15}]}}
    )
    assert b is not None
    h = History()
    limit_with_behavior(h, b, 5, 5, 1, 10, NOW)
    held = limit_with_behavior(h, b, 5, 1, 1, 10, NOW + 30)
    assert (held.replicas, held.able_reason) == (5, "ScaleDownStabilized")
    step = limit_with_behavior(h, b, 5, 1, 1, 10, NOW + 61)
    assert (step.replicas, step.limit_reason) == (4, "ScaleDownLimit")


def test_behavior_scale_down_default_window_is_300s() -> None:
    b = behavior_with_defaults({})
    assert b is not None
    h = History()
    limit_with_behavior(h, b, 4, 4, 1, 10, NOW)
    assert limit_with_behavior(h, b, 4, 1, 1, 10, NOW + 299).replicas == 4
    assert limit_with_behavior(h, b, 4, 1, 1, 10, NOW + 301).replicas == 1


def test_behavior_scale_up_window() -> None:
    b = behavior_with_defaults({"scaleUp": {"stabilizationWindowSeconds": 60}})
    assert b is not None
    h = History()
    limit_with_behavior(h, b, 2, 2, 1, 10, NOW)
    held = limit_with_behavior(h, b, 2, 6, 1, 10, NOW + 10)
    assert (held.replicas, held.able_reason) == (2, "ScaleUpStabilized")
    # after the window: default policies +4 pods or +100% per 15 s, Max: 2 + 4 = 6
    assert limit_with_behavior(h, b, 2, 6, 1, 10, NOW + 61).replicas == 6
