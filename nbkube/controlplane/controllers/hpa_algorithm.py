"""The HorizontalPodAutoscaler's arithmetic, as pure functions: replicas from metrics, then limits.

Why a module of its own: the controller (`hpa.py`) reads caches and writes objects; everything that
decides a number lives here, so it is tested without a cluster, a clock or a thread. It follows
upstream's kube-controller-manager (replica_calculator.go and horizontal.go) step by step:

1. `resource_replicas`: pods are sorted into ready (with a metric), unready (Pending, or in their
   CPU initialization period and not yet Ready / measured before becoming Ready), missing (no
   metric) and ignored (deleted or Failed). The usage ratio of the ready ones decides; within the
   tolerance (0.1) nothing changes. When pods are missing or unready the ratio is recomputed
   conservatively (missing pods count as 100% of their request when scaling down and 0% when
   scaling up, unready pods as 0% when scaling up), and a recomputed ratio that flips direction or
   lands within the tolerance keeps the current count.
2. Stabilization: without `spec.behavior`, the highest recommendation of the last 300 s (scale-down
   stabilization) and upstream's fixed scale-up cap of max(2 x current, 4); with `behavior`, the
   scale-up and scale-down windows bound the recommendation and the policies (Pods / Percent per
   period, selectPolicy Max / Min / Disabled) bound the rate, from the scale events of each period.
3. min/maxReplicas, each limit naming its reason as upstream's conditions do.

The state that persists between syncs (recommendations and scale events per HPA) is a
`History` the controller keeps per HPA key; every function takes `now` explicitly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from nbkube.api.hpa import behavior_with_defaults

__all__ = [
    "DEFAULT_DOWNSCALE_WINDOW",
    "MetricError",
    "TOLERANCE",
    "History",
    "Limited",
    "PodSample",
    "ReplicaProposal",
    "behavior_with_defaults",
    "limit_without_behavior",
    "limit_with_behavior",
    "resource_replicas",
    "value_replicas",
]

TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance
DEFAULT_DOWNSCALE_WINDOW = 300.0  # --horizontal-pod-autoscaler-downscale-stabilization
CPU_INITIALIZATION_PERIOD = 300.0  # --horizontal-pod-autoscaler-cpu-initialization-period
INITIAL_READINESS_DELAY = 30.0  # --horizontal-pod-autoscaler-initial-readiness-delay
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4


@dataclass(frozen=True)
class PodSample:
    """What the algorithm needs of one pod selected by the target's selector."""

    name: str
    phase: str = "Running"
    deleted: bool = False
    request: int | None = None  # sum of the containers' requests (CPU millicores); None: one has none
    usage: int | None = None  # metric (CPU millicores); None: the metrics API had nothing for it
    start_time: float | None = None
    ready: bool | None = None  # the Ready condition's status; None: no condition
    ready_transition: float | None = None  # the Ready condition's lastTransitionTime
    metric_time: float | None = None  # the sample's timestamp
    metric_window: float = 0.0  # the sample's window


@dataclass(frozen=True)
class ReplicaProposal:
    replicas: int
    utilization: int | None  # averageUtilization (percent of request) for Utilization targets
    average_value: int  # average usage per pod with a metric (millicores)


class MetricError(Exception):
    """No replica count can be computed from this metric (the reason is the message)."""


def _group(pods: list[PodSample], now: float) -> tuple[int, set[str], set[str], set[str]]:
    """(ready count, unready, missing, ignored) as upstream's groupPods for the CPU resource."""
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        if pod.deleted or pod.phase == "Failed":
            ignored.add(pod.name)
            continue
        if pod.phase == "Pending":
            unready.add(pod.name)
            continue
        if pod.usage is None:
            missing.add(pod.name)
            continue
        if pod.ready is None or pod.start_time is None:
            unready.add(pod.name)
            continue
        if pod.start_time + CPU_INITIALIZATION_PERIOD > now:
            # still initializing: count only a Ready pod measured after it became Ready
            is_unready = not pod.ready or (
                pod.metric_time is not None
                and pod.ready_transition is not None
                and pod.metric_time < pod.ready_transition + pod.metric_window
            )
        else:
            # never Ready since its start: it is unready only while still within the readiness delay
            is_unready = (
                not pod.ready
                and pod.ready_transition is not None
                and pod.start_time + INITIAL_READINESS_DELAY > pod.ready_transition
            )
        if is_unready:
            unready.add(pod.name)
            continue
        ready += 1
    return ready, unready, missing, ignored


def _within(ratio: float, tolerance: float) -> bool:
    return abs(1.0 - ratio) <= tolerance


def resource_replicas(
    current: int, pods: list[PodSample], target_utilization: int, now: float, tolerance: float = TOLERANCE
) -> ReplicaProposal:
    """Replicas for a Resource metric with a target averageUtilization (percent of the requests).

    Raises MetricError when no pods are selected, a pod has no request, or no pod has a metric."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    ready_count, unready, missing, ignored = _group(pods, now)
    metrics = {
        p.name: int(p.usage) for p in pods if p.usage is not None and p.name not in unready | ignored
    }
    requests: dict[str, int] = {}
    for p in pods:
        if p.request is None:
            raise MetricError(f"missing request for cpu in pod {p.name}")
        requests[p.name] = p.request
    if not metrics:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")

    def ratio_of(values: dict[str, int]) -> tuple[float, int, int]:
        total_req = sum(requests[n] for n in values)
        if total_req <= 0:
            raise MetricError("pods have no CPU request (the sum of requests is 0)")
        total = sum(values.values())
        utilization = int(total * 100 / total_req)
        return utilization / target_utilization, utilization, total // len(values)

    usage_ratio, utilization, average = ratio_of(metrics)
    scale_up_with_unready = bool(unready) and usage_ratio > 1.0
    if not scale_up_with_unready and not missing:
        if _within(usage_ratio, tolerance):
            return ReplicaProposal(current, utilization, average)
        return ReplicaProposal(math.ceil(usage_ratio * ready_count), utilization, average)
    if missing:
        for name in missing:
            # scaling down: assume they use all they asked for; scaling up: assume nothing
            metrics[name] = requests[name] if usage_ratio < 1.0 else 0
    if scale_up_with_unready:
        for name in unready:
            metrics[name] = 0
    new_ratio, _u, _a = ratio_of(metrics)
    replicas = _second_pass(current, usage_ratio, new_ratio, len(metrics), tolerance)
    return ReplicaProposal(replicas, utilization, average)


def value_replicas(
    current: int, pods: list[PodSample], target_average: int, now: float, tolerance: float = TOLERANCE
) -> ReplicaProposal:
    """Replicas for a Resource metric with a target averageValue (millicores per pod)."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    if target_average <= 0:
        raise MetricError("target averageValue must be > 0")
    ready_count, unready, missing, ignored = _group(pods, now)
    metrics = {
        p.name: int(p.usage) for p in pods if p.usage is not None and p.name not in unready | ignored
    }
    if not metrics:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    average = sum(metrics.values()) // len(metrics)
    usage_ratio = sum(metrics.values()) / len(metrics) / target_average
    scale_up_with_unready = bool(unready) and usage_ratio > 1.0
    if not scale_up_with_unready and not missing:
        if _within(usage_ratio, tolerance):
            return ReplicaProposal(current, None, average)
        return ReplicaProposal(math.ceil(usage_ratio * ready_count), None, average)
    for name in missing:
        metrics[name] = target_average if usage_ratio < 1.0 else 0
    if scale_up_with_unready:
        for name in unready:
            metrics[name] = 0
    new_ratio = sum(metrics.values()) / len(metrics) / target_average
    replicas = _second_pass(current, usage_ratio, new_ratio, len(metrics), tolerance)
    return ReplicaProposal(replicas, None, average)


def _second_pass(current: int, usage_ratio: float, new_ratio: float, count: int, tolerance: float) -> int:
    """The replica count once missing and unready pods have been given assumed usage (`new_ratio`
    over `count` pods): the current count when that lands within tolerance or turns the direction
    of the first pass (`usage_ratio`) around, as upstream's calcPlainMetricReplicas."""
    if (
        _within(new_ratio, tolerance)
        or (usage_ratio < 1.0 and new_ratio > 1.0)
        or (usage_ratio > 1.0 and new_ratio < 1.0)
    ):
        return current
    proposed = math.ceil(new_ratio * count)
    if (new_ratio < 1.0 and proposed > current) or (new_ratio > 1.0 and proposed < current):
        return current
    return proposed


# --- stabilization and rate limits ------------------------------------------------------------------


@dataclass
class _Event:
    change: int
    at: float


@dataclass
class History:
    """Per-HPA memory between syncs: (time, recommendation) pairs and the scale events."""

    recommendations: list[tuple[float, int]] = field(default_factory=list)
    scale_up: list[_Event] = field(default_factory=list)
    scale_down: list[_Event] = field(default_factory=list)

    def record(self, now: float, recommendation: int, keep_seconds: float) -> None:
        self.recommendations = [(t, r) for t, r in self.recommendations if t > now - keep_seconds]
        self.recommendations.append((now, recommendation))

    def scaled(self, behavior: dict[str, Any] | None, previous: int, new: int, now: float) -> None:
        """Remember a rescale for the rate policies (upstream keeps events only with a behavior)."""
        if behavior is None or new == previous:
            return
        keep = max(
            [_longest_period(behavior.get("scaleUp")), _longest_period(behavior.get("scaleDown"))]
        )
        if new > previous:
            self.scale_up = [e for e in self.scale_up if e.at > now - keep] + [_Event(new - previous, now)]
        else:
            self.scale_down = [e for e in self.scale_down if e.at > now - keep] + [_Event(previous - new, now)]


def _longest_period(rules: dict[str, Any] | None) -> float:
    return max([float(p.get("periodSeconds") or 0) for p in (rules or {}).get("policies") or []] + [0.0])


@dataclass(frozen=True)
class Limited:
    """A normalized recommendation with the reasons upstream gives in its conditions."""

    replicas: int
    stabilized: int  # the recommendation after stabilization, before the rate and min/max limits
    able_reason: str  # AbleToScale: ReadyForNewScale / ScaleUpStabilized / ScaleDownStabilized
    able_message: str
    limit_reason: str  # ScalingLimited reason: DesiredWithinRange / TooFewReplicas / TooManyReplicas / ...
    limit_message: str

    @property
    def limited(self) -> bool:
        return self.replicas != self.stabilized


_WITHIN = ("DesiredWithinRange", "the desired count is within the acceptable range")
_READY = ("ReadyForNewScale", "recommended size matches current size")
_SCALE_UP_LIMIT = ("ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate")
_SCALE_DOWN_LIMIT = ("ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate")
_TOO_MANY = ("TooManyReplicas", "the desired replica count is more than the maximum replica count")
_TOO_FEW = ("TooFewReplicas", "the desired replica count is less than the minimum replica count")
_SCALE_DOWN_STABILIZED = ("ScaleDownStabilized", "recent recommendations were higher than current one, "
                          "applying the highest recent recommendation")


def _upper_bound(rate_limit: int, max_replicas: int) -> tuple[int, tuple[str, str]]:
    """The lower of the rate limit and maxReplicas, with the ScalingLimited reason if it binds."""
    if max_replicas > rate_limit:
        return rate_limit, _SCALE_UP_LIMIT
    return max_replicas, _TOO_MANY


def limit_without_behavior(
    history: History,
    current: int,
    proposed: int,
    min_replicas: int,
    max_replicas: int,
    now: float,
    downscale_window: float = DEFAULT_DOWNSCALE_WINDOW,
) -> Limited:
    """Upstream's normalizeDesiredReplicas: the highest recent recommendation, then max(2x, 4) and min/max."""
    stabilized = proposed
    for t, rec in history.recommendations:
        if t > now - downscale_window and rec > stabilized:
            stabilized = rec
    history.record(now, proposed, downscale_window)
    able = _SCALE_DOWN_STABILIZED if stabilized != proposed else _READY
    scale_up_limit = max(int(SCALE_UP_LIMIT_FACTOR * current), SCALE_UP_LIMIT_MINIMUM)
    maximum, reason = _upper_bound(scale_up_limit, max_replicas)
    if stabilized < min_replicas:
        out, why = min_replicas, _TOO_FEW
    elif stabilized > maximum:
        out, why = maximum, reason
    else:
        out, why = stabilized, _WITHIN
    return Limited(out, stabilized, able[0], able[1], why[0], why[1])


def _change_in_period(events: list[_Event], period: float, now: float) -> int:
    return sum(e.change for e in events if e.at > now - period)


def _rate_limit(current: int, history: History, rules: dict[str, Any], now: float, *, up: bool) -> int:
    """The count the scaleUp (`up`) or scaleDown rules' policies allow from `current`, given the
    changes already made within each policy's period (upstream's calculateScaleUpLimitWithScalingRules
    and calculateScaleDownLimitWithBehaviors)."""
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    # Max picks the policy allowing the biggest change: the highest count up, the lowest down
    pick = (min if select == "Min" else max) if up else (max if select == "Min" else min)
    result: int | None = None
    for policy in rules.get("policies") or []:
        period = float(policy.get("periodSeconds") or 0)
        start = (
            current
            - _change_in_period(history.scale_up, period, now)
            + _change_in_period(history.scale_down, period, now)
        )
        value = int(policy.get("value") or 0)
        pods = policy.get("type") == "Pods"
        if up:
            proposed = start + value if pods else math.ceil(start * (1 + value / 100))
        else:
            proposed = start - value if pods else int(start * (1 - value / 100))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def limit_with_behavior(
    history: History,
    behavior: dict[str, Any],
    current: int,
    proposed: int,
    min_replicas: int,
    max_replicas: int,
    now: float,
    downscale_window: float = DEFAULT_DOWNSCALE_WINDOW,
) -> Limited:
    """Upstream's normalizeDesiredReplicasWithBehaviors: both windows, then the rate policies and min/max.

    `behavior` is as `behavior_with_defaults` returns it."""
    up_rules = behavior["scaleUp"]
    down_rules = behavior["scaleDown"]
    up_window = float(up_rules.get("stabilizationWindowSeconds") or 0)
    down_window_raw = down_rules.get("stabilizationWindowSeconds")
    down_window = downscale_window if down_window_raw is None else float(down_window_raw)
    up_rec = proposed
    down_rec = proposed
    for t, rec in history.recommendations:
        if t > now - up_window:
            up_rec = min(up_rec, rec)
        if t > now - down_window:
            down_rec = max(down_rec, rec)
    stabilized = max(current, up_rec)
    stabilized = min(stabilized, down_rec)
    history.record(now, proposed, max(up_window, down_window))
    if stabilized == proposed:
        able = _READY
    elif proposed >= current:
        able = ("ScaleUpStabilized", "recent recommendations were lower than current one, "
                "applying the lowest recent recommendation")
    else:
        able = _SCALE_DOWN_STABILIZED
    out, why = stabilized, _WITHIN
    if stabilized > current:
        limit = max(_rate_limit(current, history, up_rules, now, up=True), current)
        maximum, reason = _upper_bound(limit, max_replicas)
        if stabilized > maximum:
            out, why = maximum, reason
    elif stabilized < current:
        limit = min(_rate_limit(current, history, down_rules, now, up=False), current)
        minimum, reason = (limit, _SCALE_DOWN_LIMIT) if min_replicas < limit else (min_replicas, _TOO_FEW)
        if stabilized < minimum:
            out, why = minimum, reason
    return Limited(out, stabilized, able[0], able[1], why[0], why[1])
