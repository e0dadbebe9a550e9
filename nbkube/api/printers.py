"""kubectl-style tables: which columns each kind shows and how a value is printed.

`nbkube get` prints these tables; the notebook layer reuses `table_rows` to build DataFrames with
the same columns, and the HTTP API server returns them as `meta.k8s.io/v1 Table`s to `kubectl get`,
so the CLI, the widgets and kubectl agree on what "READY" or "PORT(S)" mean. It lives in the api
layer (not the CLI) because the API server sits below the CLI and must not import it. Everything
here is a pure function of the objects (and of "now" for ages), hence easy to test.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from nbkube.api import kinds, printers_storage
from nbkube.api.discovery import endpoint_slice_row
from nbkube.api.hpa import hpa_row
from nbkube.api.meta import Obj
from nbkube.clock import timestamp_or_none

__all__ = [
    "age_of",
    "format_table",
    "human_duration",
    "resource_ref",
    "table_rows",
]

Row = list[str]
_NONE = "<none>"


def human_duration(seconds: float) -> str:
    """Durations as kubectl prints ages: 45s, 2m5s, 15m, 3h20m, 2d4h, 400d, 3y20d."""
    if seconds < -1:
        return "<invalid>"
    s = max(int(seconds), 0)
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d{h % 24}h" if h % 24 else f"{h // 24}d"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    y, d = divmod(h // 24, 365)
    if y < 8:
        return f"{y}y{d}d" if d else f"{y}y"
    return f"{y}y"


def age_of(obj: Obj, now: float | None = None, field: str = "creationTimestamp") -> str:
    ts = timestamp_or_none((obj.get("metadata") or {}).get(field))
    if ts is None:
        return _NONE
    return human_duration((time.time() if now is None else now) - ts)


def resource_ref(obj: Obj) -> str:
    """`replicationcontroller/nginx`, `deployment.apps/web`: how kubectl names an object in output."""
    kind = str(obj.get("kind", ""))
    try:
        info = kinds.lookup(kind)
        prefix = f"{info.singular}.{info.group}" if info.group else info.singular
    except Exception:
        prefix = kind.lower()
    return f"{prefix}/{(obj.get('metadata') or {}).get('name', '')}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns three spaces apart (kubectl's tabwriter), no trailing spaces."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


# --- small accessors -----------------------------------------------------------------------------


def _spec(obj: Obj) -> dict[str, Any]:
    return obj.get("spec") or {}


def _status(obj: Obj) -> dict[str, Any]:
    return obj.get("status") or {}


def _num(value: Any) -> str:
    return str(int(value)) if isinstance(value, int | float) else "0"


def _labels_text(labels: dict[str, Any] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in (labels or {}).items()) or _NONE


def _selector_text(sel: Any) -> str:
    """RC/Service equality maps and matchLabels/matchExpressions, in the string form."""
    if not isinstance(sel, dict) or not sel:
        return _NONE
    if "matchLabels" in sel or "matchExpressions" in sel:
        parts = [f"{k}={v}" for k, v in (sel.get("matchLabels") or {}).items()]
        for expr in sel.get("matchExpressions") or []:
            key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
            if op == "In":
                parts.append(f"{key} in ({','.join(values)})")
            elif op == "NotIn":
                parts.append(f"{key} notin ({','.join(values)})")
            elif op == "Exists":
                parts.append(key)
            elif op == "DoesNotExist":
                parts.append(f"!{key}")
        return ",".join(parts) or _NONE
    return _labels_text(sel)


def _template_containers(obj: Obj) -> list[dict[str, Any]]:
    return ((_spec(obj).get("template") or {}).get("spec") or {}).get("containers") or []


template_containers = _template_containers


def _containers_images(containers: list[dict[str, Any]]) -> list[str]:
    return [
        ",".join(str(c.get("name", "")) for c in containers) or _NONE,
        ",".join(str(c.get("image", "")) for c in containers) or _NONE,
    ]


containers_images = _containers_images


# --- per-kind columns ----------------------------------------------------------------------------


def pod_status(pod: Obj) -> str:
    """The STATUS column: Terminating, a container's waiting/terminated reason, or the phase."""
    meta = pod.get("metadata") or {}
    status = _status(pod)
    if meta.get("deletionTimestamp"):
        return "Terminating"
    reason = str(status.get("reason") or status.get("phase") or "Pending")
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated") or {}
        if waiting.get("reason"):
            reason = str(waiting["reason"])
        elif terminated.get("reason"):
            reason = str(terminated["reason"])
        elif terminated:
            code = terminated.get("exitCode", 0)
            reason = f"ExitCode:{code}" if code else "Completed"
    return reason


def _pod(obj: Obj, now: float, wide: bool) -> Row:
    status = _status(obj)
    total = len(_spec(obj).get("containers") or [])
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for cs in statuses if cs.get("ready"))
    restarts = sum(int(cs.get("restartCount") or 0) for cs in statuses)
    row = [f"{ready}/{total}", pod_status(obj), str(restarts), age_of(obj, now)]
    if wide:
        row += [str(status.get("podIP") or _NONE), str(_spec(obj).get("nodeName") or _NONE)]
    return row


def _replicated(obj: Obj, now: float, wide: bool) -> Row:
    st = _status(obj)
    row = [_num(_spec(obj).get("replicas", 1)), _num(st.get("replicas")), _num(st.get("readyReplicas"))]
    row.append(age_of(obj, now))
    if wide:
        row += _containers_images(_template_containers(obj)) + [_selector_text(_spec(obj).get("selector"))]
    return row


def _deployment(obj: Obj, now: float, wide: bool) -> Row:
    st = _status(obj)
    desired = _num(_spec(obj).get("replicas", 1))
    row = [
        f"{_num(st.get('readyReplicas'))}/{desired}",
        _num(st.get("updatedReplicas")),
        _num(st.get("availableReplicas")),
        age_of(obj, now),
    ]
    if wide:
        row += _containers_images(_template_containers(obj)) + [_selector_text(_spec(obj).get("selector"))]
    return row


def _daemon_set(obj: Obj, now: float, wide: bool) -> Row:
    st = _status(obj)
    node_selector = ((_spec(obj).get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    row = [
        _num(st.get(key))
        for key in (
            "desiredNumberScheduled",
            "currentNumberScheduled",
            "numberReady",
            "updatedNumberScheduled",
            "numberAvailable",
        )
    ]
    row += [",".join(f"{k}={v}" for k, v in sorted(node_selector.items())) or _NONE, age_of(obj, now)]
    if wide:
        row += _containers_images(_template_containers(obj)) + [_selector_text(_spec(obj).get("selector"))]
    return row


def _controller_revision(obj: Obj, now: float, wide: bool) -> Row:
    # kubectl prints the controller as kind.group/name, lower-cased
    ref = next((r for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if r.get("controller")), None)
    owner = _NONE
    if ref is not None:
        group = str(ref.get("apiVersion") or "").rpartition("/")[0]
        owner = f"{str(ref.get('kind') or '').lower()}{'.' + group if group else ''}/{ref.get('name')}"
    return [owner, _num(obj.get("revision")), age_of(obj, now)]


def _pdb(obj: Obj, now: float, wide: bool) -> Row:
    spec = _spec(obj)
    return [
        "N/A" if spec.get("minAvailable") is None else str(spec["minAvailable"]),
        "N/A" if spec.get("maxUnavailable") is None else str(spec["maxUnavailable"]),
        _num(_status(obj).get("disruptionsAllowed")),
        age_of(obj, now),
    ]
def _job(obj: Obj, now: float, wide: bool) -> Row:
    # kubectl's printJob: "succeeded/completions", or "n/1 of parallelism" for a work queue
    spec, st = _spec(obj), _status(obj)
    succeeded, parallelism = _num(st.get("succeeded")), spec.get("parallelism") or 0
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{_num(spec['completions'])}"
    else:
        completions = f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"
    start, end = timestamp_or_none(st.get("startTime")), timestamp_or_none(st.get("completionTime"))
    duration = "" if start is None else human_duration((end if end is not None else now) - start)
    row = [completions, duration, age_of(obj, now)]
    if wide:
        row += _containers_images(_template_containers(obj)) + [_selector_text(spec.get("selector"))]
    return row


def _cron_job(obj: Obj, now: float, wide: bool) -> Row:
    spec, st = _spec(obj), _status(obj)
    last = timestamp_or_none(st.get("lastScheduleTime"))
    row = [
        str(spec.get("schedule") or ""),
        str(spec.get("timeZone") or _NONE),
        "True" if spec.get("suspend") else "False",
        str(len(st.get("active") or [])),
        _NONE if last is None else human_duration(now - last),
        age_of(obj, now),
    ]
    if wide:
        job_template = (spec.get("jobTemplate") or {}).get("spec") or {}
        containers = ((job_template.get("template") or {}).get("spec") or {}).get("containers") or []
        row += _containers_images(containers) + [_selector_text(job_template.get("selector"))]
    return row


def service_ports(svc: Obj) -> str:
    """`8000:30001/TCP` for a NodePort, `8000/TCP` otherwise; comma-separated."""
    parts = []
    for p in _spec(svc).get("ports") or []:
        text = str(p.get("port", ""))
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        parts.append(f"{text}/{p.get('protocol') or 'TCP'}")
    return ",".join(parts) or _NONE


def _service(obj: Obj, now: float, wide: bool) -> Row:
    spec = _spec(obj)
    svc_type = str(spec.get("type") or "ClusterIP")
    external = spec.get("externalIPs") or [
        i.get("ip") or i.get("hostname")
        for i in (_status(obj).get("loadBalancer") or {}).get("ingress") or []
    ]
    if external:
        ext = ",".join(str(e) for e in external)
    else:
        ext = "<pending>" if svc_type == "LoadBalancer" else _NONE
    row = [svc_type, str(spec.get("clusterIP") or _NONE), ext, service_ports(obj), age_of(obj, now)]
    if wide:
        row.append(_selector_text(spec.get("selector")))
    return row


def node_status(node: Obj) -> str:
    ready = "Unknown"
    for cond in _status(node).get("conditions") or []:
        if cond.get("type") == "Ready":
            ready = "Ready" if cond.get("status") == "True" else "NotReady"
    if ready == "Unknown":
        ready = "NotReady" if _status(node).get("conditions") else "Unknown"
    if _spec(node).get("unschedulable"):
        ready += ",SchedulingDisabled"
    return ready


def _node(obj: Obj, now: float, wide: bool) -> Row:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
    info = _status(obj).get("nodeInfo") or {}
    row = [node_status(obj), ",".join(r for r in roles if r) or _NONE, age_of(obj, now)]
    row.append(str(info.get("kubeletVersion") or _NONE))
    if wide:
        addrs = {a.get("type"): a.get("address") for a in _status(obj).get("addresses") or []}
        row += [
            str(addrs.get("InternalIP") or _NONE),
            str(addrs.get("ExternalIP") or _NONE),
            str(info.get("osImage") or _NONE),
            str(info.get("kernelVersion") or _NONE),
            str(info.get("containerRuntimeVersion") or _NONE),
        ]
    return row


def _namespace(obj: Obj, now: float, wide: bool) -> Row:
    return [str(_status(obj).get("phase") or "Active"), age_of(obj, now)]


def endpoints_text(ep: Obj, limit: int = 3) -> str:
    addrs = []
    for subset in ep.get("subsets") or []:
        ports = subset.get("ports") or [{}]
        for a in subset.get("addresses") or []:
            for p in ports:
                addrs.append(f"{a.get('ip', '')}:{p['port']}" if p.get("port") else str(a.get("ip", "")))
    if not addrs:
        return _NONE
    text = ",".join(addrs[:limit])
    return text + (f" + {len(addrs) - limit} more..." if len(addrs) > limit else "")


def _endpoints(obj: Obj, now: float, wide: bool) -> Row:
    return [endpoints_text(obj), age_of(obj, now)]


def _configmap(obj: Obj, now: float, wide: bool) -> Row:
    return [str(len(obj.get("data") or {}) + len(obj.get("binaryData") or {})), age_of(obj, now)]


def _secret(obj: Obj, now: float, wide: bool) -> Row:
    count = len(obj.get("data") or {}) + len(obj.get("stringData") or {})
    return [str(obj.get("type") or "Opaque"), str(count), age_of(obj, now)]


def event_time(ev: Obj) -> float | None:
    for field in ("lastTimestamp", "eventTime", "firstTimestamp"):
        ts = timestamp_or_none(ev.get(field))
        if ts is not None:
            return ts
    return timestamp_or_none((ev.get("metadata") or {}).get("creationTimestamp"))


def _event(obj: Obj, now: float, wide: bool) -> Row:
    ts = event_time(obj)
    inv = obj.get("involvedObject") or {}
    ref = resource_ref({"kind": inv.get("kind", ""), "metadata": {"name": inv.get("name", "")}})
    return [
        human_duration(now - ts) if ts is not None else _NONE,
        str(obj.get("type") or ""),
        str(obj.get("reason") or ""),
        ref,
        " ".join(str(obj.get("message") or "").split()),
    ]


def _quota(obj: Obj, now: float, wide: bool) -> Row:
    hard = _status(obj).get("hard") or _spec(obj).get("hard") or {}
    used = _status(obj).get("used") or {}
    requests: list[str] = []
    limits: list[str] = []
    for key in sorted(hard):
        text = f"{key}: {used.get(key, '0')}/{hard[key]}"
        (limits if key.startswith("limits.") else requests).append(text)
    return [age_of(obj, now), ", ".join(requests), ", ".join(limits)]


def _service_account(obj: Obj, now: float, wide: bool) -> Row:
    secrets = obj.get("secrets")
    return [str(len(secrets) if isinstance(secrets, list) else 0), age_of(obj, now)]


def _lease(obj: Obj, now: float, wide: bool) -> Row:
    return [str(_spec(obj).get("holderIdentity") or _NONE), age_of(obj, now)]


def _netpol(obj: Obj, now: float, wide: bool) -> Row:
    return [
        _selector_text(_spec(obj).get("podSelector")) if _spec(obj).get("podSelector") else _NONE,
        age_of(obj, now),
    ]


def _created_at(obj: Obj, now: float, wide: bool) -> Row:
    # kubectl shows roles' creation time itself (RFC 3339), not an age
    return [str((obj.get("metadata") or {}).get("creationTimestamp") or _NONE)]


def _binding(obj: Obj, now: float, wide: bool) -> Row:
    ref = obj.get("roleRef") or {}
    row = [f"{ref.get('kind', '')}/{ref.get('name', '')}", age_of(obj, now)]
    if wide:
        # kubectl's SubjectsStrings: users, groups, then service accounts as namespace/name
        found: dict[str, list[str]] = {"User": [], "Group": [], "ServiceAccount": []}
        for s in obj.get("subjects") or []:
            name = str(s.get("name", ""))
            if s.get("kind") == "ServiceAccount" and s.get("namespace"):
                name = f"{s['namespace']}/{name}"
            found.get(str(s.get("kind")), []).append(name)
        row += [", ".join(found[k]) for k in ("User", "Group", "ServiceAccount")]
    return row


def _generic(obj: Obj, now: float, wide: bool) -> Row:
    return [age_of(obj, now)]


_Columns = Callable[[Obj, float, bool], Row]

# kind -> (headers after NAME, wide-only extra headers, row function)
_TABLES: dict[str, tuple[list[str], list[str], _Columns]] = {
    "Pod": (["READY", "STATUS", "RESTARTS", "AGE"], ["IP", "NODE"], _pod),
    "ReplicationController": (
        ["DESIRED", "CURRENT", "READY", "AGE"],
        ["CONTAINERS", "IMAGES", "SELECTOR"],
        _replicated,
    ),
    "ReplicaSet": (["DESIRED", "CURRENT", "READY", "AGE"], ["CONTAINERS", "IMAGES", "SELECTOR"], _replicated),
    "Deployment": (
        ["READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ["CONTAINERS", "IMAGES", "SELECTOR"],
        _deployment,
    ),
    "DaemonSet": (
        ["DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"],
        ["CONTAINERS", "IMAGES", "SELECTOR"],
        _daemon_set,
    ),
    "ControllerRevision": (["CONTROLLER", "REVISION", "AGE"], [], _controller_revision),
    "PodDisruptionBudget": (["MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"], [], _pdb),
    "Job": (["COMPLETIONS", "DURATION", "AGE"], ["CONTAINERS", "IMAGES", "SELECTOR"], _job),
    "CronJob": (
        ["SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"],
        ["CONTAINERS", "IMAGES", "SELECTOR"],
        _cron_job,
    ),
    "HorizontalPodAutoscaler": (
        ["REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"], [], lambda o, now, _w: hpa_row(o, age_of(o, now))
    ),
    "Service": (["TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], ["SELECTOR"], _service),
    "Node": (
        ["STATUS", "ROLES", "AGE", "VERSION"],
        ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"],
        _node,
    ),
    "Namespace": (["STATUS", "AGE"], [], _namespace),
    "Endpoints": (["ENDPOINTS", "AGE"], [], _endpoints),
    "ConfigMap": (["DATA", "AGE"], [], _configmap),
    "Secret": (["TYPE", "DATA", "AGE"], [], _secret),
    "ServiceAccount": (["SECRETS", "AGE"], [], _service_account),
    "ResourceQuota": (["AGE", "REQUEST", "LIMIT"], [], _quota),
    "Lease": (["HOLDER", "AGE"], [], _lease),
    "EndpointSlice": (["ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], [], lambda o, now, w: [*endpoint_slice_row(o), age_of(o, now)]),
    "NetworkPolicy": (["POD-SELECTOR", "AGE"], [], _netpol),
    "Role": (["CREATED AT"], [], _created_at),
    "ClusterRole": (["CREATED AT"], [], _created_at),
    "RoleBinding": (["ROLE", "AGE"], ["USERS", "GROUPS", "SERVICEACCOUNTS"], _binding),
    "ClusterRoleBinding": (["ROLE", "AGE"], ["USERS", "GROUPS", "SERVICEACCOUNTS"], _binding),
    **printers_storage.TABLES,
}

# Events lead with LAST SEEN rather than NAME, as `kubectl get events` does.
_EVENT_HEADERS = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]


def table_rows(
    kind: str,
    objs: Sequence[Obj],
    wide: bool = False,
    *,
    now: float | None = None,
    name_prefix: str = "",
    show_namespace: bool = False,
) -> tuple[list[str], list[Row]]:
    """Headers and rows for `objs` of one `kind`, as `kubectl get` prints them.

    `name_prefix` ("replicationcontroller/") is used when several kinds are printed together;
    `show_namespace` adds the NAMESPACE column first (for `-A`).
    """
    info_kind = kinds.lookup(kind).kind
    at = time.time() if now is None else now
    if info_kind == "Event":
        headers = list(_EVENT_HEADERS)
        ordered = sorted(objs, key=lambda ev: event_time(ev) or 0.0)
        rows = [_event(o, at, wide) for o in ordered]
        if show_namespace:
            headers.insert(0, "NAMESPACE")
            rows = [
                [str((o.get("metadata") or {}).get("namespace", "")), *r]
                for o, r in zip(ordered, rows, strict=True)
            ]
        return headers, rows
    cols, wide_cols, fn = _TABLES.get(info_kind, (["AGE"], [], _generic))
    headers = ["NAME", *cols, *(wide_cols if wide else [])]
    rows = []
    for obj in objs:
        meta = obj.get("metadata") or {}
        row = [name_prefix + printers_storage.display_name(info_kind, obj), *fn(obj, at, wide)]
        if show_namespace:
            row.insert(0, str(meta.get("namespace", "")))
        rows.append(row)
    if show_namespace:
        headers.insert(0, "NAMESPACE")
    return headers, rows
