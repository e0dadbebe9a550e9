"""Time a rolling update under load: how long it takes, how low readiness dips, how many requests fail.

Who calls it: `nbkube demo`, the 02-rolling-update notebook and `Experiments(cluster).rollout`.
A ReplicationController is updated the article's way (a second RC takes over pod by pod,
`rolling_update()`); a Deployment by patching its pod template's image and letting its controller
roll it out. Either way the experiment ends when every live pod of the controller runs the new image
and is Ready (bounded by `timeout`).
"""

from __future__ import annotations

import copy
import functools
import time
from typing import TYPE_CHECKING, Any

from nbkube.controlplane.controllers.rollingupdate import RollingUpdateTimeout, rolling_update
from nbkube.errors import BadRequest
from nbkube.experiments.common import Session, find_controller
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

__all__ = ["rollout", "RolloutResult", "rollout_summary"]


def rollout_summary(df: pandas.DataFrame) -> pandas.DataFrame:
    """The numbers of a rollout, from its frame."""
    start = df[(df["source"] == "action") & (df["reason"] == "RolloutStart")]
    if not len(start):
        raise BadRequest("not a rollout frame: it has no RolloutStart action row")
    desired = int(start["value"].iloc[0])
    done = action_time(df, "RolloutDone")
    series = ready_series(df)
    during = series[(series["t"] >= 0) & (series["t"] <= (done if done is not None else float("inf")))]
    before = series[series["t"] < 0]
    ready_values = ([int(before["ready"].iloc[-1])] if len(before) else []) + during["ready"].astype(
        int
    ).tolist()
    probe = df[df["source"] == "probe"]
    failed = probe[probe["ok"] == False]  # noqa: E712
    pod_rows = df[df["source"] == "pod"]
    first_seen = pod_rows.groupby("pod")["t"].min() if len(pod_rows) else None
    rows: list[dict[str, Any]] = []
    metric(rows, "time to complete", done, "s")
    metric(rows, "replicas", desired, "pods")
    metric(rows, "min ready during rollout", min(ready_values) if ready_values else None, "pods")
    metric(
        rows,
        "max pods scheduled during rollout",
        int(during["scheduled"].max()) if len(during) else None,
        "pods",
    )
    metric(rows, "pods created", int((first_seen >= 0).sum()) if first_seen is not None else 0, "pods")
    metric(rows, "requests sent", len(probe), "requests")
    metric(rows, "requests failed", len(failed), "requests")
    return summary_frame(rows)


class RolloutResult(ExperimentResult):
    kind = "rollout"

    @property
    def summary(self) -> pandas.DataFrame:
        return rollout_summary(self.df)

    @property
    def image(self) -> str:
        start = self.df[(self.df["source"] == "action") & (self.df["reason"] == "RolloutStart")]
        return str(start["message"].iloc[0])

    def story(self) -> str:
        s = self.summary
        value = functools.partial(summary_value, s)
        return (
            f"{value('replicas')} replicas were rolled to {self.image} while requests kept coming. "
            f"It took {seconds(value('time to complete'))}, created {value('pods created')} pods, "
            f"never had fewer than {value('min ready during rollout')} ready nor more than "
            f"{value('max pods scheduled during rollout')} scheduled; {value('requests failed')} of "
            f"{value('requests sent')} requests failed."
        )

    def plot(self) -> Figure:
        from nbkube.experiments.plots import timeline_figure

        markers = {
            "update starts": action_time(self.df, "RolloutStart"),
            "all pods new and ready": summary_value(self.summary, "time to complete"),
        }
        return timeline_figure(
            self.df, title=self.title, markers=markers, xlabel="seconds since the update started"
        )


def _images_ok(pod: dict[str, Any], image: str, container: str | None) -> bool:
    for c in (pod.get("spec") or {}).get("containers") or []:
        if (container is None or c.get("name") == container) and c.get("image") != image:
            return False
    return True


def rollout(
    cluster: Any,
    controller: str,
    image: str,
    probe: Any = None,
    *,
    namespace: str = "default",
    container: str | None = None,
    timeout: float = 120.0,
    update_period: float = 0.5,
    max_surge: int = 1,
    max_unavailable: int = 0,
    warmup: float = 1.0,
    tail: float = 0.5,
    rate: float = 20.0,
    progress: Progress | None = None,
) -> RolloutResult:
    """Roll `controller` ("rc/name", "deploy/name" or a name) to `image` while probing `probe`.

    Raises BadRequest for bad input (before any write), ExperimentTimeout (with `.result`) when the
    rollout did not finish within `timeout` (an RC rollout can be resumed with `nbkube rolling-update`)."""
    if not image or not isinstance(image, str):
        raise BadRequest("rollout: image must be a non-empty string")
    if not 0 < timeout <= 3600:
        raise BadRequest(f"timeout must be in (0, 3600] seconds, got {timeout!r}")
    api = cluster.api
    info = find_controller(api, controller, namespace, ("ReplicationController", "Deployment"))
    obj = api.get(info.kind, info.name, info.namespace)
    containers = ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    if container is not None and container not in [c.get("name") for c in containers]:
        raise BadRequest(f"rollout: {info.key} has no container named {container!r}")
    desired = info.replicas

    def live_pods() -> list[dict[str, Any]]:
        pods, _ = api.list("Pod", info.namespace, label_selector=info.selector)
        return [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]

    def ready(p: dict[str, Any]) -> bool:
        conds = (p.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)

    def fraction() -> float:
        pods = live_pods()
        return sum(1 for p in pods if ready(p) and _images_ok(p, image, container)) / max(desired, 1)

    def done() -> bool:
        pods = live_pods()
        return len(pods) == desired and all(ready(p) and _images_ok(p, image, container) for p in pods)

    session = Session(cluster, info, probe, rate, timeout + warmup + tail + 30.0, progress)
    session.start(warmup)
    timed_out = ""
    try:
        session.act("RolloutStart", info.name, info.kind, image, desired)
        session.say(f"rolling {info.key} to {image}", 0.0)
        if info.kind == "ReplicationController":
            try:
                rolling_update(
                    api,
                    info.name,
                    info.namespace,
                    image=image,
                    container=container,
                    max_surge=max_surge,
                    max_unavailable=max_unavailable,
                    update_period=update_period,
                    timeout=timeout,
                    progress=lambda msg: session.say(msg, min(fraction(), 0.99)),
                )
            except RollingUpdateTimeout as exc:
                timed_out = str(exc)
        else:
            template = copy.deepcopy(containers)
            for c in template:
                if container is None or c.get("name") == container:
                    c["image"] = image
                    if container is None:
                        break
            api.patch(
                info.kind,
                info.name,
                info.namespace,
                {"spec": {"template": {"spec": {"containers": template}}}},
            )
        if not timed_out and not wait_until(
            done,
            timeout=timeout,
            what=f"rollout of {info.key} to {image}",
            progress=progress,
            fraction=fraction,
        ):
            timed_out = f"rollout of {info.key}: not every pod runs {image} and is Ready after {timeout:g}s"
        if not timed_out:
            session.act("RolloutDone", info.name, info.kind, image, desired)
            time.sleep(max(0.0, min(tail, 10.0)))
    finally:
        session.stop()
    result = RolloutResult(session.frame(), title=f"rolling update of {info.key} to {image}")
    if timed_out:
        raise ExperimentTimeout(timed_out, result)
    return result
