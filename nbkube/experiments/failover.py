"""Time a node failure: kill a node under load and measure detect, evict, reschedule and ready.

Who calls it: `nbkube demo`, the 03-failover-timing notebook, and `Experiments(cluster).failover`.
The article found that Kubernetes took "several minutes" to move pods off a dead node; this makes the
delay measurable. The probe keeps sending requests through the Service while it happens, so the
result also says how many requests failed in between.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

from nbkube.errors import BadRequest, NotFound
from nbkube.experiments.common import Session, controller_on_node, find_controller
from nbkube.experiments.results import (
    ExperimentResult,
    ExperimentTimeout,
    Progress,
    action_time,
    metric,
    seconds,
    summary_frame,
    summary_value,
    wait_until,
)
from nbkube.experiments.timeline import ready_series

if TYPE_CHECKING:
    import pandas
    from matplotlib.figure import Figure

__all__ = ["failover", "FailoverResult", "failover_summary"]

CONTROLLER_KINDS = ("ReplicationController", "ReplicaSet", "Deployment")


def _first_t(df: pandas.DataFrame, mask: Any) -> float | None:
    rows = df[mask & (df["t"] >= 0)]
    return float(rows["t"].iloc[0]) if len(rows) else None


def failover_summary(df: pandas.DataFrame) -> pandas.DataFrame:
    """The numbers of a failover, from its frame: seconds after the kill, and request counts."""
    kill = df[(df["source"] == "action") & (df["reason"] == "KillNode")]
    if not len(kill):
        raise BadRequest("not a failover frame: it has no KillNode action row")
    node = str(kill["name"].iloc[0])
    desired = int(kill["value"].iloc[0])
    ev = df["source"] == "event"
    detect = _first_t(
        df, ev & (df["kind"] == "Node") & (df["name"] == node) & (df["reason"] == "NodeNotReady")
    )
    evict = _first_t(df, ev & (df["reason"] == "TaintManagerEviction"))
    if evict is None:
        pods = df["source"] == "pod"
        evict = _first_t(df, pods & (df["node"] == node) & ((df["deleting"] == True) | (df["gone"] == True)))  # noqa: E712
    series = ready_series(df, exclude_node=node)
    after = series[series["t"] >= 0]
    sched = after[after["scheduled"] >= desired]
    ready = after[after["ready"] >= desired]
    probe = df[df["source"] == "probe"]
    failed = probe[probe["ok"] == False]  # noqa: E712
    failed_after = failed[failed["t"] >= 0]
    rows: list[dict[str, Any]] = []
    metric(rows, DETECT, detect, "s")
    metric(rows, EVICT, evict, "s")
    metric(rows, RESCHEDULE, sched["t"].iloc[0] if len(sched) else None, "s")
    metric(rows, READY, ready["t"].iloc[0] if len(ready) else None, "s")
    metric(rows, "replicas", desired, "pods")
    metric(rows, "requests sent", len(probe), "requests")
    metric(rows, "requests failed", len(failed), "requests")
    outage = float(failed_after["t"].max() - failed_after["t"].min()) if len(failed_after) else 0.0
    metric(rows, "longest outage (first to last failed request)", outage if len(probe) else None, "s")
    return summary_frame(rows)


DETECT = "time to detect (node NotReady)"
EVICT = "time to evict (first pod marked for deletion)"
RESCHEDULE = "time to reschedule (all pods scheduled elsewhere)"
READY = "time to ready (all replicas ready elsewhere)"
NOT_NOTICED = "the API has not noticed yet"


class FailoverResult(ExperimentResult):
    kind = "failover"

    @property
    def node(self) -> str:
        kill = self.df[(self.df["source"] == "action") & (self.df["reason"] == "KillNode")]
        return str(kill["name"].iloc[0])

    @property
    def summary(self) -> pandas.DataFrame:
        return failover_summary(self.df)

    def story(self) -> str:
        s = self.summary
        value = functools.partial(summary_value, s)
        failed, sent = value("requests failed"), value("requests sent")
        return (
            f"{self.node} was powered off at 0 s while {value('replicas')} replicas served requests. "
            f"The API marked it NotReady after {seconds(value(DETECT))}; until then it still showed the "
            f"node and its pods as Ready. The first pod was evicted at {seconds(value(EVICT))}, all were "
            f"scheduled elsewhere at {seconds(value(RESCHEDULE))} and all ready elsewhere at "
            f"{seconds(value(READY))}. {failed} of {sent} requests failed."
        )

    def plot(self) -> Figure:
        from nbkube.experiments.plots import Window, timeline_figure

        s = self.summary
        detect = summary_value(s, DETECT)
        markers = {
            f"{self.node} killed": action_time(self.df, "KillNode"),
            "API marks it NotReady": detect,
            "first pod evicted": summary_value(s, EVICT),
            "all ready elsewhere": summary_value(s, READY),
        }
        window = Window(0.0, float(detect), NOT_NOTICED) if detect is not None else None
        return timeline_figure(
            self.df,
            title=self.title,
            markers=markers,
            window=window,
            exclude_node=self.node,
            xlabel=f"seconds since {self.node} was killed",
        )


def failover(
    cluster: Any,
    node: str,
    probe: Any = None,
    *,
    controller: str | None = None,
    namespace: str = "default",
    mode: str = "power-off",
    timeout: float = 60.0,
    warmup: float = 1.0,
    tail: float = 0.5,
    rate: float = 20.0,
    progress: Progress | None = None,
) -> FailoverResult:
    """Kill `node` (cluster.kill_node) while probing; wait until the controller's replicas are all
    Ready on other nodes and the probe answers again (at most `timeout` s). The node stays failed
    (`cluster.kill_node(node, "none")` brings it back).

    `probe` is (host, port), a Service name ("name", "ns/name", "name:port"), or None for no probe.
    `controller` ("rc/name", "deploy/name" or a name) defaults to the one with most pods on the node.
    Raises BadRequest for bad input (nothing done), ExperimentTimeout (with `.result`) on timeout."""
    if not 0 < timeout <= 3600:
        raise BadRequest(f"timeout must be in (0, 3600] seconds, got {timeout!r}")
    api = cluster.api
    try:
        api.get("Node", node)
    except NotFound:
        raise BadRequest(f"failover: no node named {node!r}") from None
    info = (
        find_controller(api, controller, namespace, CONTROLLER_KINDS)
        if controller
        else controller_on_node(api, node, namespace)
    )
    desired = info.replicas
    session = Session(cluster, info, probe, rate, timeout + warmup + tail + 30.0, progress)
    session.start(warmup)
    timed_out = False
    try:
        t_kill = session.act("KillNode", node, "Node", mode, desired)
        session.act("Watch", info.name, info.kind, info.selector, desired)
        session.say(f"killed {node} ({mode}); waiting for the control plane to notice", 0.05)
        cluster.kill_node(node, mode)

        def counts() -> tuple[bool, int]:
            try:
                n = api.get("Node", node)
            except NotFound:
                return True, 0
            conds = (n.get("status") or {}).get("conditions") or []
            detected = not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
            pods, _ = api.list("Pod", info.namespace, label_selector=info.selector)
            ready = 0
            for p in pods:
                if (p.get("spec") or {}).get("nodeName") in (None, "", node):
                    continue
                if (p.get("metadata") or {}).get("deletionTimestamp"):
                    continue
                conds = (p.get("status") or {}).get("conditions") or []
                ready += any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
            return detected, ready

        state = {"ready_at": 0.0}

        def done() -> bool:
            _detected, ready = counts()
            if ready < desired:
                state["ready_at"] = 0.0
                return False
            if not state["ready_at"]:
                state["ready_at"] = time.time()
            return session.ok_since(state["ready_at"])

        def fraction() -> float:
            detected, ready = counts()
            return 0.1 if not detected else 0.2 + 0.75 * ready / max(desired, 1)

        timed_out = not wait_until(
            done,
            timeout=timeout,
            what=f"failover of {node}: replicas ready elsewhere",
            progress=progress,
            fraction=fraction,
        )
        if not timed_out:
            session.act("Recovered", info.name, info.kind, f"{desired} ready off {node}", desired)
            time.sleep(max(0.0, min(tail, 10.0)))
    finally:
        session.stop()
    result = FailoverResult(session.frame(("default",)), title=f"failover of {node} ({info.key})")
    if timed_out:
        raise ExperimentTimeout(
            f"failover of {node}: {info.key} not ready on other nodes within {timeout:g}s "
            f"(t_kill={t_kill:.3f})",
            result,
        )
    return result
