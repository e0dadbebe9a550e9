"""The event log: `record_event` writes Kubernetes Event objects; `events_dataframe` reads them back.

With a batching sink on the API (`client/eventsink.py`, as LocalCluster sets up) an Event is queued
and written with others in one transaction moments later; without one it is written at once.

Controllers, the scheduler and node agents record what happened to an object (Scheduled, Started,
Killing, NodeNotReady, ScalingReplicaSet, ...). The notebook's timelines and the failover and
rolling-update tests are built from this log, so timestamps carry microseconds. As upstream's
recorder does, a source records at most a burst of Events about one object and then one per few
minutes (`client/eventspam.py`). Recording is
best-effort, as in Kubernetes: a failure to write an event is logged and never breaks the caller.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from nbkube.api.meta import Obj
from nbkube.client.eventsink import flush_events, sink_for
from nbkube.client.eventspam import spam_filter_for, spam_key_of
from nbkube.clock import REAL_CLOCK, Clock, parse_rfc3339, rfc3339
from nbkube.logutil import log_failure

if TYPE_CHECKING:
    import pandas

    from nbkube.registry.registry import Registry

__all__ = ["record_event", "events_dataframe", "EVENT_COLUMNS"]

log = logging.getLogger(__name__)

EVENT_COLUMNS = ["time", "namespace", "kind", "name", "reason", "message", "type", "component"]


_name_lock = threading.Lock()
_last_name_ns = 0


def _name_suffix(at: float) -> str:
    """The event's name after its object's, as upstream's recorder names it: the time in
    nanoseconds, in hex. Two events of one instant (a test clock that stands still, or a float
    clock's coarser steps) take the next nanosecond, so names stay unique within the process;
    across processes two events about one object would have to fall on one nanosecond.
    Why not a random suffix: a getrandom system call per event, at thousands of events a second."""
    global _last_name_ns
    ns = int(at * 1_000_000_000)
    with _name_lock:
        if ns <= _last_name_ns:
            ns = _last_name_ns + 1
        _last_name_ns = ns
    return f"{ns:x}"


def _event_namespace(obj: Obj) -> str:
    # Kubernetes files events about cluster-scoped objects (nodes, namespaces) under "default"
    return str((obj.get("metadata") or {}).get("namespace") or "default")


def record_event(
    api: Registry,
    obj: Obj,
    reason: str,
    message: str,
    *,
    type: str = "Normal",
    component: str = "",
    clock: Clock = REAL_CLOCK,
) -> None:
    """Create an Event about `obj` in its namespace ("default" for cluster-scoped objects)."""
    try:
        meta = obj.get("metadata") or {}
        at = clock.now()
        involved: dict[str, Any] = {
            "kind": obj.get("kind", ""),
            "name": meta.get("name", ""),
            "namespace": meta.get("namespace", ""),
            "uid": meta.get("uid", ""),
        }
        if obj.get("apiVersion"):
            involved["apiVersion"] = obj["apiVersion"]
        if meta.get("resourceVersion"):
            involved["resourceVersion"] = str(meta["resourceVersion"])
        # past its source+object burst (client/eventspam.py): counted, said once, and not built
        if not spam_filter_for(api).allow_key(spam_key_of(component, "", involved, type), at, involved):
            return
        now = rfc3339(at, micro=True)
        event: Obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta.get('name', 'unknown')}.{_name_suffix(at)}",
                "namespace": _event_namespace(obj),
            },
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type,
            "source": {"component": component} if component else {},
            "reportingComponent": component,
            "eventTime": now,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        sink = sink_for(api)
        if sink is not None:
            sink.add(event)  # written with others in one batch (client/eventsink.py)
        else:
            api.create(event)
    except Exception as exc:
        log_failure(
            log,
            "recording an event",
            exc,
            detail=f"{reason} for {obj.get('kind')} {(obj.get('metadata') or {}).get('name')}",
        )


def _event_time(ev: Obj) -> float:
    for field in ("eventTime", "lastTimestamp", "firstTimestamp"):
        text = ev.get(field)
        if text:
            try:
                return parse_rfc3339(str(text))
            except ValueError:
                continue
    return parse_rfc3339(str((ev.get("metadata") or {}).get("creationTimestamp") or "1970-01-01T00:00:00Z"))


def events_dataframe(api: Registry, namespace: str = "") -> pandas.DataFrame:
    """All events (of one namespace, or all with ""), one row each, sorted by time (UTC)."""
    import pandas as pd

    flush_events(api)  # Events recorded before this call are in the log it reads
    items, _rv = api.list("Event", namespace)
    rows = []
    for ev in items:
        inv = ev.get("involvedObject") or {}
        rows.append(
            {
                "time": _event_time(ev),
                "namespace": (ev.get("metadata") or {}).get("namespace", ""),
                "kind": inv.get("kind", ""),
                "name": inv.get("name", ""),
                "reason": ev.get("reason", ""),
                "message": ev.get("message", ""),
                "type": ev.get("type", ""),
                "component": (ev.get("source") or {}).get("component", "")
                or ev.get("reportingComponent", ""),
            }
        )
    df = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    df["time"] = pd.to_datetime(df["time"], unit="s", utc=True)
    return df.sort_values("time", kind="stable").reset_index(drop=True)
