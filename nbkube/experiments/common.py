"""What failover() and rollout() share: finding the controller, and running probe + recorder around an action.

Who calls it: failover.py and rollout.py only.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nbkube.api.meta import Obj
from nbkube.api.selectors import selector_from_label_selector, selector_from_map
from nbkube.errors import BadRequest, NotFound
from nbkube.experiments.probe import Probe
from nbkube.experiments.results import Progress, build_frame
from nbkube.experiments.target import ProbeTarget, resolve_target
from nbkube.experiments.timeline import PodRecorder

__all__ = ["ControllerInfo", "find_controller", "Session", "controller_on_node"]

_KIND_ALIASES = {
    "rc": "ReplicationController",
    "replicationcontroller": "ReplicationController",
    "replicationcontrollers": "ReplicationController",
    "rs": "ReplicaSet",
    "replicaset": "ReplicaSet",
    "replicasets": "ReplicaSet",
    "deploy": "Deployment",
    "deployment": "Deployment",
    "deployments": "Deployment",
}
ROLLING_UPDATE_KEY = "deployment"  # the label the two-RC rolling update adds to selectors


@dataclass(frozen=True)
class ControllerInfo:
    kind: str
    name: str
    namespace: str
    selector: str  # label selector text for the pods the experiment watches
    replicas: int

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"


def _selector_text(obj: Obj) -> str:
    sel = (obj.get("spec") or {}).get("selector") or {}
    if obj.get("kind") == "ReplicationController":
        # the rolling update narrows selectors with a hash key; watch the pods of both RCs
        return str(selector_from_map({k: v for k, v in sel.items() if k != ROLLING_UPDATE_KEY}))
    return str(selector_from_label_selector(sel))


def _info(obj: Obj) -> ControllerInfo:
    meta = obj.get("metadata") or {}
    return ControllerInfo(
        kind=str(obj.get("kind")),
        name=str(meta.get("name")),
        namespace=str(meta.get("namespace") or "default"),
        selector=_selector_text(obj),
        replicas=int((obj.get("spec") or {}).get("replicas", 1)),
    )


def find_controller(api: Any, ref: str, namespace: str, kinds: tuple[str, ...]) -> ControllerInfo:
    """ "rc/name", "deploy/name", "rs/name" or a bare name (tried as each of `kinds` in turn)."""
    if "/" in ref:
        kind_text, _, name = ref.partition("/")
        kind = _KIND_ALIASES.get(kind_text.lower())
        if kind is None or kind not in kinds:
            raise BadRequest(f"controller {ref!r}: kind must be one of {', '.join(kinds)}")
        try:
            return _info(api.get(kind, name, namespace))
        except NotFound:
            raise BadRequest(f"controller {ref!r}: no {kind} {namespace}/{name}") from None
    for kind in kinds:
        try:
            return _info(api.get(kind, ref, namespace))
        except NotFound:
            continue
    raise BadRequest(f"controller {ref!r}: no {' or '.join(kinds)} named {ref} in namespace {namespace}")


def controller_on_node(api: Any, node: str, namespace: str) -> ControllerInfo:
    """The controller owning most of the pods on `node` (a Deployment when it owns that ReplicaSet)."""
    pods, _ = api.list("Pod", namespace, field_selector={"spec.nodeName": node})
    owners: Counter[tuple[str, str]] = Counter()
    for pod in pods:
        for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
            if ref.get("controller"):
                owners[(str(ref.get("kind")), str(ref.get("name")))] += 1
    if not owners:
        raise BadRequest(
            f"node {node} runs no controller's pods in namespace {namespace}: nothing to fail over"
        )
    (kind, name), _n = owners.most_common(1)[0]
    info = _info(api.get(kind, name, namespace))
    return info


@dataclass
class Session:
    """Probe + pod recorder + action log for one experiment; `frame()` assembles the result's df."""

    cluster: Any
    controller: ControllerInfo
    probe_spec: Any
    rate: float
    max_duration: float
    progress: Progress | None
    actions: list[dict[str, Any]] = field(default_factory=list)
    target: ProbeTarget | None = None
    probe: Probe | None = None
    recorder: PodRecorder | None = None
    began: float = 0.0
    _cancel_hook: Any = None  # takes back the stop callback registered with the cluster
    _stopped: bool = False

    def start(self, warmup: float) -> None:
        self.began = time.time()
        api = self.cluster.api
        # stopping the cluster (another cell, kernel exit) ends the probe and the recorder first
        on_stop = getattr(self.cluster, "on_stop", None)
        if callable(on_stop):
            self._cancel_hook = on_stop(self.stop)
        try:
            self.recorder = PodRecorder(api, self.controller.namespace, self.controller.selector).start()
            if self.probe_spec is not None:
                self.target = resolve_target(self.cluster, self.probe_spec, self.controller.namespace)
                host, port = self.target.address
                self.probe = Probe(host, port, rate=self.rate, duration=self.max_duration).start()
                self.say(f"probing {self.target.label} at {self.rate:g} requests/s", 0.0)
            # a baseline before the action: `warmup` seconds, and one good answer (bounded)
            settle = time.monotonic() + warmup
            deadline = settle + 5.0
            while time.monotonic() < deadline:
                if time.monotonic() >= settle and self.ok_since(self.began):
                    break
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def say(self, message: str, fraction: float) -> None:
        if self.progress is not None:
            self.progress(message, fraction)

    def act(self, reason: str, name: str, kind: str, message: str = "", value: float | None = None) -> float:
        now = time.time()
        self.actions.append(
            {"time": now, "kind": kind, "name": name, "reason": reason, "message": message, "value": value}
        )
        return now

    def ok_since(self, t: float) -> bool:
        return self.probe is None or self.probe.ok_since(t)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._cancel_hook is not None:
            self._cancel_hook()
        if self.probe is not None:
            self.probe.stop()
        if self.recorder is not None:
            self.recorder.stop()
        if self.target is not None:
            self.target.close()

    def frame(self, extra_namespaces: tuple[str, ...] = ()) -> Any:
        import pandas as pd

        from nbkube.client.events import events_dataframe

        namespaces = dict.fromkeys((self.controller.namespace, *extra_namespaces))
        events = pd.concat([events_dataframe(self.cluster.api, ns) for ns in namespaces], ignore_index=True)
        probe_df = self.probe.df if self.probe is not None else pd.DataFrame()
        pods = self.recorder.rows if self.recorder is not None else []
        return build_frame(events, probe_df, pods, self.actions, self.began, time.time() + 1.0)
