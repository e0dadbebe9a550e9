"""`nbkube describe`: a human-readable page per object, ending with the Events about it.

Called by `cmd_basic` (and usable by the notebook to show the same text). The page follows
kubectl's layout: `Key:  value` lines for metadata, a short per-kind summary of spec and status for
the kinds users look at most (Pod, ReplicationController/ReplicaSet, Deployment, Service, Node), a
generic rendering of spec/status for the rest, then the Event objects whose involvedObject is this
object.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from nbkube.api.meta import Obj
from nbkube.api.printers import (
    _selector_text,
    endpoints_text,
    event_time,
    format_table,
    human_duration,
    node_status,
    pod_status,
)
from nbkube.registry.registry import LAST_APPLIED

__all__ = ["describe", "events_for"]

_NONE = "<none>"
_Lines = list[tuple[str, str]]


def _kv_block(title: str, mapping: dict[str, Any] | None) -> list[str]:
    """`Labels:  a=b` then continuation lines aligned under the first value."""
    items = [f"{k}={v}" for k, v in (mapping or {}).items()]
    if not items:
        return [f"{title}:\t{_NONE}"]
    return [f"{title}:\t{items[0]}"] + [f"\t{item}" for item in items[1:]]


def _align(lines: list[str]) -> list[str]:
    """Expand the first tab of each top-level line so values line up (kubectl's tabwriter)."""
    width = max((len(line.split("\t", 1)[0]) for line in lines if "\t" in line), default=0) + 2
    out = []
    for line in lines:
        if "\t" in line:
            key, value = line.split("\t", 1)
            out.append(f"{key.ljust(width)}{value}".rstrip())
        else:
            out.append(line.rstrip())
    return out


def _render(value: Any, indent: int) -> list[str]:
    """Nested spec/status as indented `Key: value` lines (for kinds without a custom page)."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, dict | list) and v:
                lines.append(f"{pad}{k}:")
                lines += _render(v, indent + 1)
            else:
                lines.append(f"{pad}{k}:\t{_scalar(v)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                sub = _render(item, indent + 1)
                if sub:
                    sub[0] = f"{pad}- {sub[0].lstrip()}"
                lines += sub
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(f"{pad}{_scalar(value)}")
    return lines


def _scalar(v: Any) -> str:
    if v is None or v == {} or v == [] or v == "":
        return _NONE
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _containers(containers: Sequence[dict[str, Any]], statuses: Sequence[dict[str, Any]] = ()) -> list[str]:
    by_name = {cs.get("name"): cs for cs in statuses}
    lines = ["Containers:"]
    for c in containers:
        lines.append(f"  {c.get('name', '')}:")
        lines.append(f"    Image:\t{c.get('image', '')}")
        ports = [f"{p.get('containerPort')}/{p.get('protocol') or 'TCP'}" for p in c.get("ports") or []]
        lines.append(f"    Port:\t{', '.join(ports) or _NONE}")
        if c.get("command") or c.get("args"):
            lines.append(
                f"    Command:\t{' '.join(str(x) for x in (c.get('command') or []) + (c.get('args') or []))}"
            )
        res = c.get("resources") or {}
        for section in ("limits", "requests"):
            if res.get(section):
                lines.append(
                    f"    {section.capitalize()}:\t" + ", ".join(f"{k}={v}" for k, v in res[section].items())
                )
        cs = by_name.get(c.get("name"))
        if cs is not None:
            state = cs.get("state") or {}
            name = next(iter(state), "")
            reason = (state.get(name) or {}).get("reason", "") if name else ""
            lines.append(f"    State:\t{name.capitalize() or 'Unknown'}{f' ({reason})' if reason else ''}")
            lines.append(f"    Ready:\t{'True' if cs.get('ready') else 'False'}")
            lines.append(f"    Restart Count:\t{int(cs.get('restartCount') or 0)}")
    if len(lines) == 1:
        lines.append(f"  {_NONE}")
    return lines


def _conditions(status: dict[str, Any]) -> list[str]:
    conds = status.get("conditions") or []
    if not conds:
        return []
    lines = ["Conditions:", "  Type\tStatus\tReason\tMessage"]
    for c in conds:
        lines.append(
            f"  {c.get('type', '')}\t{c.get('status', '')}\t{c.get('reason', '')}\t{c.get('message', '')}"
        )
    return _table_lines(lines[:1], lines[1:])


def _table_lines(head: list[str], rows: list[str]) -> list[str]:
    cells = [r.strip().split("\t") for r in rows]
    if not cells:
        return head
    text = format_table(cells[0], [c + [""] * (len(cells[0]) - len(c)) for c in cells[1:]])
    return head + ["  " + line for line in text.splitlines()]


def _pod(obj: Obj, api: Any) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    lines = [
        f"Node:\t{spec.get('nodeName') or _NONE}",
        f"Status:\t{pod_status(obj)}",
        f"IP:\t{status.get('podIP') or _NONE}",
    ]
    ctl = next((r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
    if ctl:
        lines.append(f"Controlled By:\t{ctl.get('kind')}/{ctl.get('name')}")
    if status.get("message"):
        lines.append(f"Message:\t{status['message']}")
    lines += _containers(spec.get("containers") or [], status.get("containerStatuses") or [])
    lines += _conditions(status)
    if spec.get("nodeSelector"):
        lines += _kv_block("Node-Selectors", spec["nodeSelector"])
    tolerations = [
        f"{t.get('key', '')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect', '')}"
        + (f" for {t['tolerationSeconds']}s" if t.get("tolerationSeconds") is not None else "")
        for t in spec.get("tolerations") or []
    ]
    lines.append(f"Tolerations:\t{', '.join(tolerations) or _NONE}")
    return lines


def _replicated(obj: Obj, api: Any) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    template = spec.get("template") or {}
    lines = [
        f"Selector:\t{_selector_text(spec.get('selector'))}",
        f"Replicas:\t{int(status.get('replicas') or 0)} current / {int(spec.get('replicas', 1))} desired",
        f"Pods Status:\t{int(status.get('readyReplicas') or 0)} Ready / "
        f"{int(status.get('availableReplicas') or 0)} Available",
        "Pod Template:",
    ]
    lines += ["  " + line for line in _kv_block("Labels", (template.get("metadata") or {}).get("labels"))]
    lines += ["  " + line for line in _containers((template.get("spec") or {}).get("containers") or [])]
    return lines


def _deployment(obj: Obj, api: Any) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    strategy = spec.get("strategy") or {}
    lines = [
        f"Selector:\t{_selector_text(spec.get('selector'))}",
        f"Replicas:\t{int(spec.get('replicas', 1))} desired | {int(status.get('updatedReplicas') or 0)} updated | "
        f"{int(status.get('replicas') or 0)} total | {int(status.get('availableReplicas') or 0)} available | "
        f"{int(status.get('unavailableReplicas') or 0)} unavailable",
        f"StrategyType:\t{strategy.get('type') or 'RollingUpdate'}",
    ]
    ru = strategy.get("rollingUpdate") or {}
    if ru:
        lines.append(
            f"RollingUpdateStrategy:\t{ru.get('maxUnavailable', '25%')} max unavailable, {ru.get('maxSurge', '25%')} max surge"
        )
    lines.append(f"MinReadySeconds:\t{int(spec.get('minReadySeconds') or 0)}")
    template = spec.get("template") or {}
    lines.append("Pod Template:")
    lines += ["  " + line for line in _kv_block("Labels", (template.get("metadata") or {}).get("labels"))]
    lines += ["  " + line for line in _containers((template.get("spec") or {}).get("containers") or [])]
    lines += _conditions(status)
    return lines


def _service(obj: Obj, api: Any) -> list[str]:
    spec = obj.get("spec") or {}
    lines = [
        f"Selector:\t{_selector_text(spec.get('selector'))}",
        f"Type:\t{spec.get('type') or 'ClusterIP'}",
        f"IP:\t{spec.get('clusterIP') or _NONE}",
    ]
    for p in spec.get("ports") or []:
        label = f"{p['name']}  " if p.get("name") else "<unset>  "
        lines.append(f"Port:\t{label}{p.get('port')}/{p.get('protocol') or 'TCP'}")
        lines.append(f"TargetPort:\t{p.get('targetPort', p.get('port'))}/{p.get('protocol') or 'TCP'}")
        if p.get("nodePort"):
            lines.append(f"NodePort:\t{label}{p['nodePort']}/{p.get('protocol') or 'TCP'}")
    ep_text = _NONE
    if api is not None:
        try:
            ep = api.get("Endpoints", obj["metadata"]["name"], obj["metadata"].get("namespace", ""))
            ep_text = endpoints_text(ep, limit=10**6)
        except Exception:  # no Endpoints object yet (no endpoints controller running)
            ep_text = _NONE
    lines.append(f"Endpoints:\t{ep_text}")
    return lines


def _node(obj: Obj, api: Any) -> list[str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    taints = [
        f"{t.get('key', '')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect', '')}"
        for t in spec.get("taints") or []
    ]
    lines = [
        f"Status:\t{node_status(obj)}",
        f"Taints:\t{', '.join(taints) or _NONE}",
        f"Unschedulable:\t{'true' if spec.get('unschedulable') else 'false'}",
        f"PodCIDR:\t{spec.get('podCIDR') or _NONE}",
    ]
    lines += _conditions(status)
    addrs = status.get("addresses") or []
    if addrs:
        lines.append("Addresses:")
        lines += [f"  {a.get('type')}:\t{a.get('address')}" for a in addrs]
    for section in ("capacity", "allocatable"):
        if status.get(section):
            lines.append(f"{section.capitalize()}:")
            lines += [f"  {k}:\t{v}" for k, v in status[section].items()]
    if api is not None:
        try:
            pods, _rv = api.list("Pod", "", field_selector={"spec.nodeName": obj["metadata"]["name"]})
        except Exception:
            pods = []
        lines.append(f"Non-terminated Pods:\t({len(pods)} in total)")
        lines += [f"  {p['metadata'].get('namespace', '')}/{p['metadata']['name']}" for p in pods]
    return lines


def _configmap(obj: Obj, api: Any) -> list[str]:
    lines = ["Data", "===="]
    for k, v in (obj.get("data") or {}).items():
        lines += [f"{k}:", "----", str(v)]
    return lines


def _secret(obj: Obj, api: Any) -> list[str]:
    lines = [f"Type:\t{obj.get('type') or 'Opaque'}", "", "Data", "===="]
    for k, v in (obj.get("data") or {}).items():
        # base64 text: the decoded size, never the value (as kubectl)
        size = len(str(v)) * 3 // 4 - str(v).count("=")
        lines.append(f"{k}:\t{size} bytes")
    return lines


def _generic(obj: Obj, api: Any) -> list[str]:
    lines: list[str] = []
    skip = {"apiVersion", "kind", "metadata"}
    for key, value in obj.items():
        if key in skip:
            continue
        if isinstance(value, dict | list) and value:
            lines.append(f"{key[:1].upper()}{key[1:]}:")
            lines += _render(value, 1)
        else:
            lines.append(f"{key[:1].upper()}{key[1:]}:\t{_scalar(value)}")
    return lines


_PAGES: dict[str, Callable[[Obj, Any], list[str]]] = {
    "Pod": _pod,
    "ReplicationController": _replicated,
    "ReplicaSet": _replicated,
    "Deployment": _deployment,
    "Service": _service,
    "Node": _node,
    "ConfigMap": _configmap,
    "Secret": _secret,
}


def events_for(obj: Obj, events: Sequence[Obj]) -> list[Obj]:
    """The events whose involvedObject is `obj` (by uid, or by kind/namespace/name), oldest first."""
    meta = obj.get("metadata") or {}
    uid = meta.get("uid")
    mine = []
    for ev in events:
        inv = ev.get("involvedObject") or {}
        if uid and inv.get("uid"):
            if inv["uid"] == uid:
                mine.append(ev)
        elif (
            inv.get("kind") == obj.get("kind")
            and inv.get("name") == meta.get("name")
            and (inv.get("namespace") or "") == (meta.get("namespace") or "")
        ):
            mine.append(ev)
    return sorted(mine, key=lambda ev: event_time(ev) or 0.0)


def _events_lines(events: Sequence[Obj], now: float) -> list[str]:
    if not events:
        return [f"Events:\t{_NONE}"]
    rows = []
    for ev in events:
        ts = event_time(ev)
        source = ev.get("source") or {}
        rows.append(
            [
                str(ev.get("type") or ""),
                str(ev.get("reason") or ""),
                human_duration(now - ts) if ts is not None else _NONE,
                str(source.get("component") or ev.get("reportingComponent") or ""),
                " ".join(str(ev.get("message") or "").split()),
            ]
        )
    table = format_table(["Type", "Reason", "Age", "From", "Message"], rows)
    return ["Events:"] + ["  " + line for line in table.splitlines()]


def describe(obj: Obj, events: Sequence[Obj] = (), *, api: Any = None, now: float | None = None) -> str:
    """The describe page for `obj`; `events` are all candidate Event objects (filtered here)."""
    at = time.time() if now is None else now
    meta = obj.get("metadata") or {}
    lines = [f"Name:\t{meta.get('name', '')}"]
    if meta.get("namespace"):
        lines.append(f"Namespace:\t{meta['namespace']}")
    lines += _kv_block("Labels", meta.get("labels"))
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    lines += _kv_block("Annotations", annotations)
    lines.append(f"Kind:\t{obj.get('kind', '')}")
    if meta.get("creationTimestamp"):
        lines.append(f"CreationTimestamp:\t{meta['creationTimestamp']}")
    if meta.get("deletionTimestamp"):
        lines.append(f"DeletionTimestamp:\t{meta['deletionTimestamp']}")
    lines.append(f"ResourceVersion:\t{meta.get('resourceVersion', '')}")
    page = _PAGES.get(str(obj.get("kind", "")), _generic)
    lines += page(obj, api)
    lines += _events_lines(events_for(obj, events) if obj.get("kind") != "Event" else [], at)
    return "\n".join(_align(lines))
