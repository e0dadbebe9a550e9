"""The HorizontalPodAutoscaler controller: every sync period, replicas from resource metrics.

As upstream's horizontal-pod-autoscaler controller: each HPA is reconciled when it changes and again
every `profile.hpa_sync_period` (15 s in the kubernetes profile, upstream's
--horizontal-pod-autoscaler-sync-period). A reconcile reads the scale target (Deployment, ReplicaSet,
ReplicationController, or any kind with `spec.replicas` and a selector), the pods its selector
picks (from the informer) and their PodMetrics (`metrics.k8s.io`, through `nbkube/client/metrics.py`
or an injected source), hands them to the pure arithmetic of `hpa_algorithm.py`, writes the new
replica count to the target's `spec.replicas` (what the scale subresource writes) and the HPA's
status: currentReplicas, desiredReplicas, currentMetrics, lastScaleTime and the AbleToScale,
ScalingActive and ScalingLimited conditions with upstream's reasons. Events: SuccessfulRescale,
FailedGetResourceMetric, FailedComputeMetricsReplicas, FailedGetScale.

Recommendations and scale events live in memory per HPA (as upstream's do): a new leader starts
with empty windows. Time comes from the injected clock, so tests drive windows without waiting.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

from nbkube.api import kinds
from nbkube.api.meta import Obj, key_of
from nbkube.api.quantity import QuantityError, parse_cpu, parse_memory
from nbkube.api.selectors import Selector, selector_from_label_selector, selector_from_map
from nbkube.client import metrics as metrics_client
from nbkube.client.controller import Controller
from nbkube.clock import REAL_CLOCK, Clock, parse_rfc3339, rfc3339, timestamp_or_none
from nbkube.controlplane.controllers.hpa_algorithm import (
    DEFAULT_DOWNSCALE_WINDOW,
    History,
    Limited,
    MetricError,
    PodSample,
    limit_with_behavior,
    limit_without_behavior,
    resource_replicas,
    value_replicas,
)
from nbkube.controlplane.controllers.writes import event
from nbkube.controlplane.profiles import Profile
from nbkube.errors import Conflict, NbkubeError, NotFound

if TYPE_CHECKING:
    from nbkube.client.informer import Informer, InformerFactory
    from nbkube.registry.registry import Registry

__all__ = ["HorizontalPodAutoscalerController", "MetricsSource"]

COMPONENT = "horizontal-pod-autoscaler"
# (namespace) -> PodMetrics objects of that namespace
MetricsSource = Callable[[str], list[Obj]]


def _condition(conditions: list[Obj], type_: str, status: bool, reason: str, message: str, now: float) -> None:
    """Set one condition, keeping its lastTransitionTime while its status stays."""
    text = "True" if status else "False"
    for c in conditions:
        if c.get("type") == type_:
            if c.get("status") != text:
                c["lastTransitionTime"] = rfc3339(now)
            c.update({"status": text, "reason": reason, "message": message})
            return
    conditions.append(
        {"type": type_, "status": text, "lastTransitionTime": rfc3339(now), "reason": reason, "message": message}
    )


def _selector_of(target: Obj) -> Selector:
    sel = (target.get("spec") or {}).get("selector")
    if isinstance(sel, dict) and ("matchLabels" in sel or "matchExpressions" in sel):
        return selector_from_label_selector(sel)
    if isinstance(sel, dict) and sel:
        return selector_from_map(sel)
    return Selector.nothing()


def _ready(pod: Obj) -> tuple[bool | None, float | None]:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True", timestamp_or_none(c.get("lastTransitionTime"))
    return None, None


def _request(pod: Obj, resource: str) -> int | None:
    """Sum of the containers' requests (CPU millicores, memory bytes); None if one has none."""
    total = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        raw = ((c.get("resources") or {}).get("requests") or {}).get(resource)
        if raw is None:
            return None
        total += parse_cpu(raw) if resource == "cpu" else parse_memory(raw)
    return total


def _usage(metric: Obj, resource: str) -> int:
    total = 0
    for c in metric.get("containers") or []:
        raw = (c.get("usage") or {}).get(resource, "0")
        total += parse_cpu(raw) if resource == "cpu" else parse_memory(raw)
    return total


def _window(metric: Obj) -> float:
    raw = str(metric.get("window") or "0s")
    try:
        return float(raw[:-1]) if raw.endswith("s") else float(raw)
    except ValueError:
        return 0.0


class HorizontalPodAutoscalerController(Controller):
    name = "horizontal-pod-autoscaler"

    def __init__(
        self,
        api: Registry,
        factory: InformerFactory,
        *,
        clock: Clock = REAL_CLOCK,
        profile: Profile | None = None,
        metrics: MetricsSource | None = None,
        workers: int = 1,
    ):
        super().__init__(api, factory, clock=clock, workers=workers)
        self.sync_period = profile.hpa_sync_period if profile is not None else 15.0
        self.downscale_window = DEFAULT_DOWNSCALE_WINDOW
        self.metrics: MetricsSource = metrics or (lambda ns: metrics_client.pod_metrics(api, ns))
        self.histories: dict[str, History] = {}
        self._reported: dict[tuple[str, str], str] = {}  # (HPA key, warning reason) -> last message
        self.hpas: Informer = factory.informer("HorizontalPodAutoscaler")
        self.pods: Informer = factory.informer("Pod")
        self.hpas.add_handler(on_add=self.enqueue, on_update=self._updated, on_delete=self._deleted)

    def _updated(self, old: Obj, new: Obj) -> None:
        # our own status writes do not change the generation: the periodic resync covers the rest
        if (old.get("metadata") or {}).get("generation") != (new.get("metadata") or {}).get("generation"):
            self.enqueue(new)

    def _deleted(self, hpa: Obj) -> None:
        meta = hpa.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        self.histories.pop(key, None)
        self._reported = {k: v for k, v in self._reported.items() if k[0] != key}

    # -- reconcile ---------------------------------------------------------------------------------

    def reconcile(self, key: str) -> None:
        hpa = self.hpas.get(key)
        if hpa is None:
            self.histories.pop(key, None)
            return
        try:
            self._reconcile(key, hpa)
        finally:
            self.queue.add_after(key, self.sync_period)

    def _event(self, hpa: Obj, reason: str, message: str, warning: bool = False) -> None:
        if warning and self._reported.get((key_of(hpa), reason)) == message:
            return  # the same failure as at the last sync: one event, not one per sync period
        self._reported[(key_of(hpa), reason)] = message
        event(self, hpa, reason, message, COMPONENT, warning=warning)

    def _reconcile(self, key: str, hpa: Obj) -> None:
        now = self.clock.now()
        meta = hpa.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        spec = hpa.get("spec") or {}
        old_status = hpa.get("status") or {}
        conditions: list[Obj] = copy.deepcopy(old_status.get("conditions") or [])
        status: Obj = {
            "observedGeneration": meta.get("generation"),
            "currentReplicas": old_status.get("currentReplicas", 0),
            "desiredReplicas": old_status.get("desiredReplicas", 0),
        }
        if old_status.get("lastScaleTime"):
            status["lastScaleTime"] = old_status["lastScaleTime"]
        if old_status.get("currentMetrics"):
            status["currentMetrics"] = old_status["currentMetrics"]
        ref = spec.get("scaleTargetRef") or {}
        ref_text = f"{ref.get('kind')}/{ref.get('name')}"
        try:
            info = kinds.lookup(str(ref.get("kind") or ""))
            target = self.api.get(info.kind, str(ref.get("name") or ""), namespace)
        except NbkubeError as exc:
            _condition(conditions, "AbleToScale", False, "FailedGetScale", f"the HPA controller was unable to get the target's current scale: {exc}", now)
            self._event(hpa, "FailedGetScale", str(exc), warning=True)
            self._write_status(hpa, status, conditions)
            return
        self._reported.pop((key, "FailedGetScale"), None)  # a later failure is news again
        spec_replicas = int((target.get("spec") or {}).get("replicas", 1))
        current = int((target.get("status") or {}).get("replicas", spec_replicas) or 0)
        # upstream reads the Scale's status.replicas as "current"; before the workload controller has
        # reported any, the spec's count is the best reading
        if not (target.get("status") or {}).get("replicas") and spec_replicas:
            current = spec_replicas
        status["currentReplicas"] = current
        low = int(spec.get("minReplicas") or 1)
        high = int(spec.get("maxReplicas") or low)
        _condition(conditions, "AbleToScale", True, "SucceededGetScale", "the HPA controller was able to get the target's current scale", now)
        history = self.histories.setdefault(key, History())
        behavior = spec.get("behavior")
        rescale_reason = ""
        if spec_replicas == 0 and low != 0:
            desired = 0
            rescale = False
            _condition(conditions, "ScalingActive", False, "ScalingDisabled", "scaling is disabled since the replica count of the target is zero", now)
        elif current > high:
            desired, rescale_reason = high, "Current number of replicas above Spec.MaxReplicas"
            rescale = desired != spec_replicas
        elif current < low:
            desired, rescale_reason = low, "Current number of replicas below Spec.MinReplicas"
            rescale = desired != spec_replicas
        else:
            proposed, metric_name, statuses = self._replicas_for_metrics(hpa, target, namespace, current, conditions, now)
            status["currentMetrics"] = statuses
            if proposed < 0:
                status["desiredReplicas"] = old_status.get("desiredReplicas", current)
                self._write_status(hpa, status, conditions)
                return
            if behavior is None:
                limited = limit_without_behavior(history, current, proposed, low, high, now, self.downscale_window)
            else:
                limited = limit_with_behavior(history, behavior, current, proposed, low, high, now, self.downscale_window)
            self._limit_conditions(conditions, limited, now)
            desired = limited.replicas
            rescale_reason = f"{metric_name} above target" if desired > current else "All metrics below target"
            rescale = desired != current
        if rescale:
            try:
                self._scale(info.kind, target, desired)
            except NbkubeError as exc:
                _condition(conditions, "AbleToScale", False, "FailedUpdateScale", f"the HPA controller was unable to update the target scale: {exc}", now)
                self._event(hpa, "FailedRescale", f"New size: {desired}; reason: {rescale_reason}; error: {exc}", warning=True)
                self._write_status(hpa, status, conditions)
                if isinstance(exc, Conflict):
                    raise
                return
            self._reported.pop((key, "FailedRescale"), None)
            _condition(conditions, "AbleToScale", True, "SucceededRescale", f"the HPA controller was able to update the target scale to {desired}", now)
            self._event(hpa, "SuccessfulRescale", f"New size: {desired}; reason: {rescale_reason}")
            history.scaled(behavior, current, desired, now)
            status["lastScaleTime"] = rfc3339(now)
            self.log.info("%s: %s %d -> %d (%s)", key, ref_text, current, desired, rescale_reason)
        status["desiredReplicas"] = desired
        self._write_status(hpa, status, conditions)

    @staticmethod
    def _limit_conditions(conditions: list[Obj], limited: Limited, now: float) -> None:
        _condition(conditions, "AbleToScale", True, limited.able_reason, limited.able_message, now)
        _condition(conditions, "ScalingLimited", limited.limited, limited.limit_reason, limited.limit_message, now)

    def _replicas_for_metrics(
        self, hpa: Obj, target: Obj, namespace: str, current: int, conditions: list[Obj], now: float
    ) -> tuple[int, str, list[Obj]]:
        """(replicas, the deciding metric's name, currentMetrics); replicas -1 when none can be computed."""
        selector = _selector_of(target)
        pods = [
            p
            for p in self.pods.list()
            if (p.get("metadata") or {}).get("namespace") == namespace
            and selector.matches((p.get("metadata") or {}).get("labels") or {})
        ]
        try:
            samples = {str((m.get("metadata") or {}).get("name")): m for m in self.metrics(namespace)}
        except NbkubeError as exc:
            samples = {}
            metrics_error: str | None = str(exc)
        else:
            metrics_error = None
        best, best_name = -1, ""
        statuses: list[Obj] = []
        invalid: list[str] = []
        specs = (hpa.get("spec") or {}).get("metrics") or []
        for m in specs:
            res = m.get("resource") or {}
            resource = str(res.get("name") or "cpu")
            target_spec = res.get("target") or {}
            try:
                if metrics_error is not None:
                    raise MetricError(f"unable to get metrics for resource {resource}: {metrics_error}")
                pod_samples = [self._sample(p, samples, resource) for p in pods]
                if target_spec.get("type") == "AverageValue":
                    raw = target_spec.get("averageValue")
                    wanted = parse_cpu(raw) if resource == "cpu" else parse_memory(raw)
                    proposal = value_replicas(current, pod_samples, wanted, now)
                else:
                    proposal = resource_replicas(current, pod_samples, int(target_spec.get("averageUtilization") or 0), now)
            except (MetricError, QuantityError) as exc:
                invalid.append(f"{resource}: {exc}")
                self._event(hpa, "FailedGetResourceMetric", f"failed to get {resource} utilization: {exc}", warning=True)
                continue
            shown = f"{proposal.average_value}m" if resource == "cpu" else str(proposal.average_value)
            current_value: Obj = {"averageValue": shown}
            if proposal.utilization is not None:
                current_value["averageUtilization"] = proposal.utilization
            statuses.append({"type": "Resource", "resource": {"name": resource, "current": current_value}})
            if proposal.replicas > best:
                best, best_name = proposal.replicas, f"{resource} resource utilization (percentage of request)" if proposal.utilization is not None else f"{resource} resource"
        if specs and (len(invalid) == len(specs) or (invalid and best < current)):
            message = "the HPA was unable to compute the replica count: " + "; ".join(invalid)
            _condition(conditions, "ScalingActive", False, "FailedGetResourceMetric", message, now)
            self._event(hpa, "FailedComputeMetricsReplicas", message, warning=True)
            return -1, "", statuses
        key = key_of(hpa)
        for reason in ("FailedGetResourceMetric", "FailedComputeMetricsReplicas"):
            self._reported.pop((key, reason), None)
        _condition(
            conditions,
            "ScalingActive",
            True,
            "ValidMetricFound",
            f"the HPA was able to successfully calculate a replica count from {best_name}",
            now,
        )
        return best, best_name, statuses

    @staticmethod
    def _sample(pod: Obj, samples: dict[str, Obj], resource: str) -> PodSample:
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        name = str(meta.get("name") or "")
        metric = samples.get(name)
        ready, transition = _ready(pod)
        return PodSample(
            name=name,
            phase=str(status.get("phase") or "Pending"),
            deleted=bool(meta.get("deletionTimestamp")),
            request=_request(pod, resource),
            usage=_usage(metric, resource) if metric is not None else None,
            start_time=timestamp_or_none(status.get("startTime")),
            ready=ready,
            ready_transition=transition,
            metric_time=parse_rfc3339(str(metric["timestamp"])) if metric is not None and metric.get("timestamp") else None,
            metric_window=_window(metric) if metric is not None else 0.0,
        )

    def _scale(self, kind: str, target: Obj, replicas: int) -> None:
        """Write spec.replicas, as the scale subresource does, pinned to the version read."""
        meta = target.get("metadata") or {}

        def change(cur: Obj) -> Obj:
            new = copy.deepcopy(cur)
            new.setdefault("spec", {})["replicas"] = replicas
            return new

        self.api.mutate(kind, str(meta.get("name")), str(meta.get("namespace") or ""), change)

    def _write_status(self, hpa: Obj, status: Obj, conditions: list[Obj]) -> None:
        status = {**status, "conditions": conditions}
        if hpa.get("status") == status:
            return
        meta = hpa.get("metadata") or {}

        def change(cur: Obj) -> Obj:
            # the status is this sync's finding whatever the cache held: written on the latest version
            return {**cur, "status": status}

        try:
            self.api.mutate(
                "HorizontalPodAutoscaler", str(meta.get("name")), str(meta.get("namespace") or ""), change, status=True
            )
        except NotFound:
            return  # deleted meanwhile
