"""Pod timelines: record every pod's (node, phase, ready) changes, and rebuild state from those rows.

Who calls it: failover() and rollout() run a `PodRecorder` (an informer over the pods the experiment
is about) beside the load probe; plots.py and the summaries use `pod_intervals` and `ready_series`
on the result's DataFrame, so every figure and number can be rebuilt from `.df` alone.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from nbkube.api.meta import Obj

if TYPE_CHECKING:
    import pandas

    from nbkube.registry.registry import Registry

__all__ = ["PodRecorder", "POD_COLUMNS", "pod_intervals", "ready_series", "revision_of"]

POD_COLUMNS = ["time", "pod", "node", "phase", "ready", "deleting", "gone", "controller", "revision", "image"]


def revision_of(pod: Obj) -> str:
    """Which version of the template a pod runs: its images, with the ReplicaSet's template hash.

    (Not the two-RC update's `deployment` label: that one is also put on the old pods mid-update.)"""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    images = ",".join(str(c.get("image", "")) for c in (pod.get("spec") or {}).get("containers") or [])
    if labels.get("pod-template-hash"):
        return f"{images} ({str(labels['pod-template-hash'])[:6]})"
    return images


def _controller(pod: Obj) -> str:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return f"{ref.get('kind', '')}/{ref.get('name', '')}"
    return ""


def _ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _row(pod: Obj, now: float, gone: bool = False) -> dict[str, Any]:
    meta = pod.get("metadata") or {}
    return {
        "time": now,
        "pod": str(meta.get("name", "")),
        "node": str((pod.get("spec") or {}).get("nodeName") or ""),
        "phase": str((pod.get("status") or {}).get("phase") or "Pending"),
        "ready": _ready(pod) and not gone,
        "deleting": bool(meta.get("deletionTimestamp")),
        "gone": gone,
        "controller": _controller(pod),
        "revision": revision_of(pod),
        "image": ",".join(str(c.get("image", "")) for c in (pod.get("spec") or {}).get("containers") or []),
    }


_STATE = ("node", "phase", "ready", "deleting", "revision")


class PodRecorder:
    """Records a row whenever a selected pod's node, phase, readiness or deletion changes."""

    def __init__(self, api: Registry, namespace: str = "default", label_selector: str | None = None):
        from nbkube.client.informer import Informer

        self._rows: list[dict[str, Any]] = []
        self._last: dict[str, tuple[Any, ...]] = {}
        self._lock = threading.Lock()
        self._sync_time: float | None = None  # the pods already there are stamped with one time
        self._informer = Informer(api, "Pod", namespace=namespace, label_selector=label_selector or None)
        self._informer.add_handler(self._on_add, self._on_update, self._on_delete)

    def start(self, timeout: float = 10.0) -> PodRecorder:
        self._sync_time = time.time()
        self._informer.start()
        self._informer.wait_synced(timeout)
        self._sync_time = None
        return self

    def stop(self) -> None:
        self._informer.stop()

    def _record(self, pod: Obj, gone: bool = False) -> None:
        row = _row(pod, self._sync_time or time.time(), gone)
        key = row["pod"] + "/" + str((pod.get("metadata") or {}).get("uid", ""))
        state = (*(row[k] for k in _STATE), gone)
        with self._lock:
            if self._last.get(key) == state:
                return
            self._last[key] = state
            self._rows.append(row)

    def _on_add(self, pod: Obj) -> None:
        self._record(pod)

    def _on_update(self, _old: Obj, new: Obj) -> None:
        self._record(new)

    def _on_delete(self, pod: Obj) -> None:
        self._record(pod, gone=True)

    @property
    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._rows)


def _pod_rows(df: pandas.DataFrame) -> pandas.DataFrame:
    return df[df["source"] == "pod"].sort_values("t", kind="stable")


def pod_intervals(df: pandas.DataFrame) -> pandas.DataFrame:
    """One row per (pod, node, ready) stretch: pod, node, revision, start, end (s), ready, open.

    `start`/`end` are seconds on the result's `t` axis; a stretch still going at the end of the
    recording ends at the last `t` in the frame and has open=True."""
    import pandas as pd

    rows = _pod_rows(df)
    t_end = float(df["t"].max()) if len(df) else 0.0
    out: list[dict[str, Any]] = []
    current: dict[str, dict[str, Any]] = {}

    def close(pod: str, t: float) -> None:
        cur = current.pop(pod, None)
        if cur is not None and t > cur["start"]:
            out.append({**cur, "end": t, "open": False})

    for r in rows.itertuples(index=False):
        pod, t = str(r.pod), float(r.t)
        alive = bool(r.node) and not bool(r.gone)
        key = (str(r.node), bool(r.ready), str(r.revision))
        cur = current.get(pod)
        if cur is not None and (cur["node"], cur["ready"], cur["revision"]) == key and alive:
            continue
        close(pod, t)
        if alive:
            current[pod] = {
                "pod": pod,
                "node": str(r.node),
                "revision": str(r.revision),
                "ready": bool(r.ready),
                "start": t,
            }
    for pod in list(current):
        cur = current.pop(pod)
        out.append({**cur, "end": max(t_end, cur["start"]), "open": True})
    cols = ["pod", "node", "revision", "ready", "start", "end", "open"]
    return pd.DataFrame(out, columns=cols).sort_values(["node", "pod", "start"]).reset_index(drop=True)


def ready_series(df: pandas.DataFrame, exclude_node: str = "") -> pandas.DataFrame:
    """Ready pods (not deleting, not on `exclude_node`) after each pod row: columns t, ready, scheduled."""
    import pandas as pd

    state: dict[str, tuple[bool, bool]] = {}  # pod -> (ready, scheduled), both off exclude_node
    out: list[tuple[float, int, int]] = []
    for r in _pod_rows(df).itertuples(index=False):
        on = bool(r.node) and not bool(r.gone) and not bool(r.deleting) and str(r.node) != exclude_node
        state[str(r.pod)] = (on and bool(r.ready), on)
        out.append((float(r.t), sum(a for a, _ in state.values()), sum(b for _, b in state.values())))
    series = pd.DataFrame(out, columns=["t", "ready", "scheduled"])
    # rows stamped at the same instant (the initial listing) count once, with their final state
    return series.drop_duplicates("t", keep="last").reset_index(drop=True)
