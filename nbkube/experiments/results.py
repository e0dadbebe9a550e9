"""The shape every experiment returns, and the helpers that assemble and wait for it.

Who calls it: failover.py and rollout.py build an `ExperimentResult` from the rows they collected;
report.py, the CLI demo and the notebook's display glue read it. `df` holds everything, one row per
Kubernetes Event ("event"), probe request ("probe"), observed pod change ("pod") and experiment step
("action"), with `t` = seconds since the action; `summary` and `plot()` are computed from `df` only.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbkube.errors import NbkubeError

if TYPE_CHECKING:
    import pandas
    from matplotlib.figure import Figure

__all__ = [
    "ExperimentResult",
    "ExperimentTimeout",
    "Progress",
    "FRAME_COLUMNS",
    "build_frame",
    "action_time",
    "wait_until",
]

# (message, fraction done in 0..1): the CLI prints lines, the notebook moves a progress bar
Progress = Callable[[str, float], None]

FRAME_COLUMNS = [
    "time", "t", "source",
    # events and actions
    "kind", "name", "reason", "message", "type", "component", "value",
    # probe requests
    "ok", "latency", "status", "pod", "error",
    # pod observations
    "node", "phase", "ready", "deleting", "gone", "controller", "revision", "image",
]  # fmt: skip


class ExperimentTimeout(NbkubeError):
    """The experiment's condition did not hold within its timeout; `.result` has what was recorded."""

    def __init__(self, message: str, result: ExperimentResult | None = None):
        super().__init__(message)
        self.result = result


def build_frame(
    events: pandas.DataFrame,
    probe: pandas.DataFrame,
    pods: list[dict[str, Any]],
    actions: list[dict[str, Any]],
    since: float,
    until: float,
) -> pandas.DataFrame:
    """One time-ordered frame of the window [since, until] (epoch s); `t` is relative to the first action."""
    import pandas as pd

    parts = []
    if len(events):
        ev = events.copy()
        ev["source"] = "event"
        parts.append(ev)
    if len(probe):
        pr = probe.copy()
        pr["source"] = "probe"
        parts.append(pr)
    if pods:
        po = pd.DataFrame(pods)
        po["time"] = pd.to_datetime(po["time"].astype(float), unit="s", utc=True)
        po["source"] = "pod"
        parts.append(po)
    if actions:
        ac = pd.DataFrame(actions)
        ac["time"] = pd.to_datetime(ac["time"].astype(float), unit="s", utc=True)
        ac["source"] = "action"
        parts.append(ac)
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=FRAME_COLUMNS)
    for col in FRAME_COLUMNS:
        if col not in df.columns:
            df[col] = None
    df = df[FRAME_COLUMNS]
    lo = pd.Timestamp(since, unit="s", tz="UTC")
    hi = pd.Timestamp(until, unit="s", tz="UTC")
    df = df[(df["time"] >= lo) & (df["time"] <= hi)]
    origin = pd.Timestamp(actions[0]["time"], unit="s", tz="UTC") if actions else lo
    df["t"] = (df["time"] - origin).dt.total_seconds()
    return df.sort_values("time", kind="stable").reset_index(drop=True)


def action_time(df: pandas.DataFrame, reason: str) -> float | None:
    """`t` of the first action row with this reason."""
    rows = df[(df["source"] == "action") & (df["reason"] == reason)]
    return float(rows["t"].iloc[0]) if len(rows) else None


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    progress: Progress | None = None,
    fraction: Callable[[], float] | None = None,
    interval: float = 0.05,
) -> bool:
    """Poll `condition` (bounded by `timeout`), reporting progress about twice a second."""
    deadline = time.monotonic() + timeout
    next_report = 0.0
    while True:
        if condition():
            if progress is not None:
                progress(what, 1.0)
            return True
        now = time.monotonic()
        if now >= deadline:
            return False
        if progress is not None and now >= next_report:
            progress(what, max(0.0, min(1.0, fraction() if fraction else 0.0)))
            next_report = now + 0.5
        time.sleep(interval)


class ExperimentResult:
    """`.df` (everything), `.summary` (the numbers), `.plot()` (a matplotlib Figure)."""

    kind = "experiment"

    def __init__(self, df: pandas.DataFrame, *, title: str = ""):
        self.df = df
        self.title = title or self.kind

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.title}: {len(self.df)} rows>\n{self.summary.to_string(index=False)}"

    @property
    def summary(self) -> pandas.DataFrame:
        raise NotImplementedError

    def plot(self) -> Figure:
        raise NotImplementedError

    @property
    def probe_df(self) -> pandas.DataFrame:
        return self.df[self.df["source"] == "probe"]

    def story(self) -> str:
        """One paragraph for people: what was done, what happened, the key numbers (the summary's)."""
        raise NotImplementedError

    def _repr_png_(self) -> bytes:
        from nbkube.experiments.plots import figure_png

        return figure_png(self.plot())

    def _repr_html_(self) -> str:
        """Title, the story, then the summary table beside the plot (an embedded PNG)."""
        from html import escape

        png = base64.b64encode(self._repr_png_()).decode()
        table = self.summary.to_html(index=False, border=0, na_rep="")
        return (
            f"<div class='nbk-result'><h4>{escape(self.title)}</h4><p>{escape(self.story())}</p>"
            "<div style='display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start'>"
            f"<div style='flex:0 0 auto'>{table}</div>"
            f"<img style='flex:1 1 560px;max-width:100%' src='data:image/png;base64,{png}'/></div></div>"
        )


def summary_value(summary: pandas.DataFrame, name: str) -> Any:
    """The value of one metric of a summary frame (None when it was not measured)."""
    rows = summary[summary["metric"] == name]
    if not len(rows):
        raise KeyError(name)
    value = rows["value"].iloc[0]
    return None if value is None or (isinstance(value, float) and value != value) else value


def seconds(value: Any) -> str:
    """A summary's seconds as the story says them: the table's number, or "not measured"."""
    return "not measured" if value is None else f"{value:g} s"


def metric(rows: list[dict[str, Any]], name: str, value: float | int | None, unit: str) -> None:
    # counts stay whole numbers, durations keep milliseconds
    shown: float | int | None = None
    if value is not None:
        shown = int(value) if unit != "s" else round(float(value), 3)
    rows.append({"metric": name, "value": shown, "unit": unit})


def summary_frame(rows: list[dict[str, Any]]) -> pandas.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        {
            "metric": [r["metric"] for r in rows],
            "value": pd.Series([r["value"] for r in rows], dtype=object),
            "unit": [r["unit"] for r in rows],
        }
    )
