"""Turn what a runtime says about a pod into the Pod's `.status`, as the kubelet's status manager does.

Pure functions, called by the node agent (`agent.py`) on every pod sync: the phase from the
container states, the four standard conditions (PodScheduled, Initialized, ContainersReady, Ready)
whose `lastTransitionTime` only moves when their status changes, podIP/hostIP, startTime and
containerStatuses. Keeping the previous times unchanged is what lets the agent skip writes when
nothing changed.
"""

from __future__ import annotations

from typing import Any

from nbkube.api.initial_status import pod_qos_class
from nbkube.api.meta import Obj
from nbkube.clock import rfc3339
from nbkube.node.runtime.base import PodRuntimeStatus

__all__ = ["build_pod_status", "pod_phase", "condition", "TERMINAL_PHASES"]

TERMINAL_PHASES = ("Succeeded", "Failed")


def condition(status: Obj, ctype: str) -> Obj | None:
    for c in status.get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


def pod_phase(rt: PodRuntimeStatus | None) -> str:
    if rt is None or not rt.containers:
        return "Pending"
    states = [c.state for c in rt.containers]
    if all(s == "terminated" for s in states):
        return "Succeeded" if all((c.exit_code or 0) == 0 for c in rt.containers) else "Failed"
    if any(s == "running" for s in states):
        return "Running"
    # waiting: either still being created, or restarting after an exit (crash loop) => Running
    if any(c.restart_count > 0 or c.last_terminated for c in rt.containers):
        return "Running"
    return "Pending"


def _cond(old_status: Obj, ctype: str, value: bool, now: float, reason: str = "") -> Obj:
    text = "True" if value else "False"
    prev = condition(old_status, ctype)
    out: Obj = {"type": ctype, "status": text}
    if prev is not None and prev.get("status") == text and prev.get("lastTransitionTime"):
        out["lastTransitionTime"] = prev["lastTransitionTime"]
    else:
        out["lastTransitionTime"] = rfc3339(now)
    # no `lastProbeTime: null`: the registry drops nulls from what is written (as the apiserver's
    # decoding does), so a status built with one never equals the stored one, and every resync
    # of a settled pod would send a write that changes nothing
    if reason and not value:
        out["reason"] = reason
    return out


def build_pod_status(
    pod: Obj, rt: PodRuntimeStatus | None, *, host_ip: str, now: float, start_time: float | None = None
) -> Obj:
    """The whole `.status` the agent wants the pod to have now."""
    old: Obj = pod.get("status") or {}
    phase = pod_phase(rt)
    ready = rt is not None and rt.all_ready and phase == "Running"
    status: dict[str, Any] = {"phase": phase}
    not_ready_reason = "PodCompleted" if phase in TERMINAL_PHASES else "ContainersNotReady"
    status["conditions"] = [
        _cond(old, "Initialized", True, now),
        _cond(old, "Ready", ready, now, not_ready_reason),
        _cond(old, "ContainersReady", ready, now, not_ready_reason),
        _cond(old, "PodScheduled", True, now),
    ]
    status["hostIP"] = host_ip
    status["hostIPs"] = [{"ip": host_ip}]
    if rt is not None and rt.pod_ip:
        status["podIP"] = rt.pod_ip
        status["podIPs"] = [{"ip": rt.pod_ip}]
    if old.get("startTime"):
        status["startTime"] = old["startTime"]
    elif start_time is not None:
        status["startTime"] = rfc3339(start_time)
    if rt is not None:
        status["containerStatuses"] = [c.to_wire() for c in rt.containers]
    else:
        status["containerStatuses"] = [
            {
                "name": c.get("name", ""),
                "image": c.get("image", ""),
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}},
                "lastState": {},
            }
            for c in (pod.get("spec") or {}).get("containers") or []
        ]
    status["qosClass"] = old.get("qosClass") or pod_qos_class(pod)
    return status
