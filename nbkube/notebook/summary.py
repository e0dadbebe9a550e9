"""What the notebook shows about one object: its status word, colour and table row.

The HTML cards, the DataFrame views and the dashboard's chips must agree on what "Running and
ready" or "NotReady" means and which colour it gets, so that logic lives here once, as pure
functions of the wire-shape dict. Nothing here imports IPython, ipywidgets or pandas; html.py,
views.py and dashboard.py call it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from nbkube.api.meta import Obj
from nbkube.clock import parse_rfc3339

__all__ = [
    "COLOURS",
    "Status",
    "status_of",
    "row_of",
    "columns_for",
    "age",
    "labels_text",
    "kind_of",
]

# Status colours: background for chips/cards (text is dark on all of them).
COLOURS: dict[str, str] = {
    "green": "#c8efc8",
    "amber": "#ffe2a8",
    "red": "#f6b8b8",
    "grey": "#dddddd",
    "blue": "#cfe0f7",
}

Status = tuple[str, str]  # (word shown, colour name in COLOURS)


def kind_of(obj: Obj) -> str:
    return str(obj.get("kind") or "")


def _meta(obj: Obj) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _status(obj: Obj) -> dict[str, Any]:
    return obj.get("status") or {}


def _spec(obj: Obj) -> dict[str, Any]:
    return obj.get("spec") or {}


def age(obj: Obj, now: float | None = None) -> str:
    """kubectl-style age ("42s", "5m", "3h", "2d") from metadata.creationTimestamp."""
    ts = _meta(obj).get("creationTimestamp")
    if not ts:
        return ""
    try:
        created = parse_rfc3339(str(ts))
    except ValueError:
        return ""
    secs = max(0, int((time.time() if now is None else now) - created))
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    if secs < 172800:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def labels_text(obj: Obj) -> str:
    labels = _meta(obj).get("labels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


# -- pods ------------------------------------------------------------------------------------------


def _container_statuses(pod: Obj) -> list[dict[str, Any]]:
    return list(_status(pod).get("containerStatuses") or [])


def pod_ready(pod: Obj) -> tuple[int, int]:
    """(ready containers, containers in the spec)."""
    total = len(_spec(pod).get("containers") or []) or len(_container_statuses(pod))
    ready = sum(1 for cs in _container_statuses(pod) if cs.get("ready"))
    return ready, total


def pod_is_ready(pod: Obj) -> bool:
    for cond in _status(pod).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    ready, total = pod_ready(pod)
    return total > 0 and ready == total


def pod_restarts(pod: Obj) -> int:
    return sum(int(cs.get("restartCount") or 0) for cs in _container_statuses(pod))


def _pod_status(pod: Obj) -> Status:
    if _meta(pod).get("deletionTimestamp"):
        return "Terminating", "grey"
    st = _status(pod)
    phase = str(st.get("phase") or "Pending")
    # A waiting or terminated container's reason says more than the phase (kubectl does the same).
    for cs in _container_statuses(pod):
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        reason = waiting.get("reason")
        if reason in ("CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "CreateContainerError"):
            return str(reason), "red"
    if phase == "Running":
        return ("Running", "green") if pod_is_ready(pod) else ("Running", "amber")
    if phase == "Pending":
        reason = st.get("reason") or ""
        return (str(reason) if reason else "Pending"), "amber"
    if phase == "Failed":
        return str(st.get("reason") or "Failed"), "red"
    if phase == "Succeeded":
        return "Completed", "blue"
    return phase, "grey"


# -- nodes -----------------------------------------------------------------------------------------


def node_ready(node: Obj) -> str:
    """ "True" / "False" / "Unknown" from the Ready condition."""
    for cond in _status(node).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status") or "Unknown")
    return "Unknown"


def _node_status(node: Obj) -> Status:
    ready = node_ready(node)
    has_condition = any(c.get("type") == "Ready" for c in _status(node).get("conditions") or [])
    if ready == "True":
        word, colour = "Ready", "green"
    elif has_condition:
        # False, or Unknown because the agent stopped reporting: kubectl says NotReady for both
        word, colour = "NotReady", "red"
    else:
        word, colour = "Unknown", "grey"  # registered but never reported
    if _spec(node).get("unschedulable"):
        # kubectl prints "Ready,SchedulingDisabled"; amber because it is a deliberate, healthy state
        return f"{word},SchedulingDisabled", "amber" if colour == "green" else colour
    return word, colour


def node_internal_ip(node: Obj) -> str:
    for addr in _status(node).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            return str(addr.get("address") or "")
    return ""


# -- controllers and services ---------------------------------------------------------------------


def _controller_status(obj: Obj) -> Status:
    desired = int(_spec(obj).get("replicas", 1) or 0)
    ready = int(_status(obj).get("readyReplicas") or 0)
    word = f"{ready}/{desired} ready"
    if ready == desired:
        return word, "green"
    return word, "amber"


def _daemon_set_status(obj: Obj) -> Status:
    desired = int(_status(obj).get("desiredNumberScheduled") or 0)
    ready = int(_status(obj).get("numberReady") or 0)
    return f"{ready}/{desired} nodes ready", "green" if ready == desired else "amber"


def status_of(obj: Obj) -> Status:
    """The status word and colour for any object (grey when the kind has no notion of health)."""
    kind = kind_of(obj)
    if kind == "Pod":
        return _pod_status(obj)
    if kind == "Node":
        return _node_status(obj)
    if kind in ("ReplicationController", "ReplicaSet", "Deployment"):
        return _controller_status(obj)
    if kind == "DaemonSet":
        return _daemon_set_status(obj)
    if kind == "Service":
        return str(_spec(obj).get("type") or "ClusterIP"), "blue"
    if kind == "Namespace":
        phase = str(_status(obj).get("phase") or "Active")
        return phase, "green" if phase == "Active" else "grey"
    return kind or "Object", "grey"


# -- table rows ------------------------------------------------------------------------------------


def _owner(obj: Obj) -> str:
    refs = _meta(obj).get("ownerReferences") or []
    for ref in refs:
        if ref.get("controller"):
            return f"{ref.get('kind', '')}/{ref.get('name', '')}"
    return f"{refs[0].get('kind', '')}/{refs[0].get('name', '')}" if refs else ""


def _ports(svc: Obj) -> str:
    parts = []
    for p in _spec(svc).get("ports") or []:
        text = f"{p.get('port', '')}"
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        parts.append(f"{text}/{p.get('protocol', 'TCP')}")
    return ",".join(parts)


def _selector_text(obj: Obj) -> str:
    sel = _spec(obj).get("selector") or {}
    if "matchLabels" in sel or "matchExpressions" in sel:
        sel = sel.get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(sel.items()))


def _image(obj: Obj) -> str:
    spec = _spec(obj)
    pod_spec = (spec.get("template") or {}).get("spec") or spec
    return ",".join(str(c.get("image", "")) for c in pod_spec.get("containers") or [])


def _row_pod(o: Obj) -> dict[str, Any]:
    ready, total = pod_ready(o)
    return {
        "phase": _status(o).get("phase") or "Pending",
        "status": _pod_status(o)[0],
        "ready": f"{ready}/{total}",
        "restarts": pod_restarts(o),
        "node": _spec(o).get("nodeName") or "",
        "ip": _status(o).get("podIP") or "",
        "owner": _owner(o),
    }


def _row_node(o: Obj) -> dict[str, Any]:
    info = _status(o).get("nodeInfo") or {}
    return {
        "status": _node_status(o)[0],
        "ready": node_ready(o),
        "unschedulable": bool(_spec(o).get("unschedulable")),
        "internal_ip": node_internal_ip(o),
        "pod_cidr": _spec(o).get("podCIDR") or "",
        "runtime": info.get("containerRuntimeVersion", ""),
    }


def _row_service(o: Obj) -> dict[str, Any]:
    spec = _spec(o)
    return {
        "type": spec.get("type") or "ClusterIP",
        "cluster_ip": spec.get("clusterIP") or "",
        "ports": _ports(o),
        "selector": _selector_text(o),
    }


def _row_controller(o: Obj) -> dict[str, Any]:
    st = _status(o)
    return {
        "desired": int(_spec(o).get("replicas", 1) or 0),
        "current": int(st.get("replicas") or 0),
        "ready": int(st.get("readyReplicas") or 0),
        "available": int(st.get("availableReplicas") or 0),
        "images": _image(o),
        "selector": _selector_text(o),
    }


def _row_daemon_set(o: Obj) -> dict[str, Any]:
    st = _status(o)
    return {
        "desired": int(st.get("desiredNumberScheduled") or 0),
        "current": int(st.get("currentNumberScheduled") or 0),
        "ready": int(st.get("numberReady") or 0),
        "available": int(st.get("numberAvailable") or 0),
        "images": _image(o),
        "selector": _selector_text(o),
    }


_ROWS: dict[str, Callable[[Obj], dict[str, Any]]] = {
    "Pod": _row_pod,
    "Node": _row_node,
    "Service": _row_service,
    "ReplicationController": _row_controller,
    "ReplicaSet": _row_controller,
    "Deployment": _row_controller,
    "DaemonSet": _row_daemon_set,
}

# Column order per kind; "namespace" is dropped for cluster-scoped kinds.
_COLUMNS: dict[str, list[str]] = {
    "Pod": [
        "namespace",
        "name",
        "phase",
        "status",
        "ready",
        "restarts",
        "node",
        "ip",
        "owner",
        "age",
        "labels",
    ],
    "Node": [
        "name",
        "status",
        "ready",
        "unschedulable",
        "internal_ip",
        "pod_cidr",
        "runtime",
        "age",
        "labels",
    ],
    "Service": ["namespace", "name", "type", "cluster_ip", "ports", "selector", "age", "labels"],
    "ReplicationController": [
        "namespace",
        "name",
        "desired",
        "current",
        "ready",
        "available",
        "images",
        "selector",
        "age",
        "labels",
    ],
}
_COLUMNS["ReplicaSet"] = _COLUMNS["ReplicationController"]
_COLUMNS["Deployment"] = _COLUMNS["ReplicationController"]
_COLUMNS["DaemonSet"] = _COLUMNS["ReplicationController"]
_GENERIC = ["namespace", "name", "status", "age", "labels"]


def columns_for(kind: str) -> list[str]:
    return list(_COLUMNS.get(kind, _GENERIC))


def row_of(obj: Obj, now: float | None = None) -> dict[str, Any]:
    """One table row (column name -> value) for `obj`, in the columns of `columns_for(kind)`."""
    meta = _meta(obj)
    kind = kind_of(obj)
    row: dict[str, Any] = {
        "namespace": meta.get("namespace") or "",
        "name": meta.get("name") or "",
        "status": status_of(obj)[0],
        "age": age(obj, now),
        "labels": labels_text(obj),
    }
    extra = _ROWS.get(kind)
    if extra is not None:
        row.update(extra(obj))
    return {c: row.get(c, "") for c in columns_for(kind)}
