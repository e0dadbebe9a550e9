"""Timeline figures built from an experiment's DataFrame alone (no cluster needed to redraw them).

Who calls it: `FailoverResult.plot()` / `RolloutResult.plot()`, report.py and `nbkube demo`.
Figures are `ResultFigure`s (a `matplotlib.figure.Figure` made directly, never through pyplot), so
drawing works from any thread and without a GUI backend, and a notebook shows each one exactly once
(pyplot's inline backend only re-shows figures that pyplot itself keeps); `_repr_png_` shows it even
where no matplotlib backend was chosen.

Top panel: a Gantt chart, one lane per pod grouped by node, bars coloured by revision (pale while the
pod is not ready). Bottom panel: ready replicas as a step line, and failed probe requests as red ticks.
Every marker is a vertical line at a time the result's summary reports (the caller passes those very
numbers), named with that number in a legend placed outside the data; a window (the time between a
node dying and the API noticing) is shaded and labelled above the chart, never over the bars.
Artists carry gids ("pod-bars", "ready-line", "failed-requests", "marker", "window") so tests can
find them.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nbkube.experiments.timeline import pod_intervals, ready_series

if TYPE_CHECKING:
    import pandas

__all__ = ["ResultFigure", "Window", "timeline_figure", "round_robin_figure", "figure_png"]

_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
_MARKER_COLOURS = ["#222222", "#d62728", "#2ca02c", "#9467bd", "#8c564b"]
_MARKER_STYLES = ["--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1))]
_NOT_READY = "#d9d9d9"
_WINDOW = "#fdd9a0"
LABEL_SIZE = 9  # pod names, tick labels and legends: readable on a projector
PNG_DPI = 100


def figure_png(fig: Figure, dpi: int = PNG_DPI) -> bytes:
    """The figure as PNG bytes (what the notebook, the HTML report and the PNG files show)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


class ResultFigure(Figure):
    """A Figure that a notebook shows as a PNG, once, with or without `%matplotlib inline`."""

    def _repr_png_(self) -> bytes:
        return figure_png(self)


class Window:
    """A shaded stretch of the time axis: [start, end] seconds with a label said above the chart."""

    def __init__(self, start: float, end: float, label: str):
        self.start, self.end, self.label = float(start), float(end), label


def _fmt(t: float) -> str:
    return f"{t:g} s"


def timeline_figure(
    df: pandas.DataFrame,
    *,
    title: str = "",
    markers: dict[str, float | None] | None = None,
    window: Window | None = None,
    exclude_node: str = "",
    xlabel: str = "seconds since the action",
) -> ResultFigure:
    """Gantt of pod lifetimes per node over ready replicas and failed requests.

    `markers` maps a label to the time (s on the result's `t` axis) the summary reports for it;
    each is drawn at exactly that time and named "label (t s)" in the legend. `exclude_node`'s pods
    do not count as ready in the bottom panel (a killed node's pods serve nobody)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    iv = pod_intervals(df)
    revisions = list(dict.fromkeys(iv["revision"])) if len(iv) else []
    colour = {rev: _PALETTE[i % len(_PALETTE)] for i, rev in enumerate(revisions)}

    # one lane per (node, pod), nodes in order, pods by first start
    lanes: list[tuple[str, str]] = []
    if len(iv):
        first = iv.groupby(["node", "pod"])["start"].min().reset_index().sort_values(["node", "start"])
        lanes = [(str(n), str(p)) for n, p in zip(first["node"], first["pod"], strict=True)]
    height = max(4.5, 2.4 + 0.32 * len(lanes))
    fig = ResultFigure(figsize=(11, height + 1.8), layout="constrained")
    gantt, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[height, 1.8])
    lane_of = {lane: i for i, lane in enumerate(lanes)}

    bars: dict[int, list[tuple[tuple[float, float], Any]]] = {}
    for r in iv.itertuples(index=False):
        span = (float(r.start), max(float(r.end) - float(r.start), 1e-3))
        fill = colour[str(r.revision)] if r.ready else _NOT_READY
        bars.setdefault(lane_of[(str(r.node), str(r.pod))], []).append((span, fill))
    for y, spans in sorted(bars.items()):
        coll = gantt.broken_barh(
            [s for s, _ in spans], (y - 0.4, 0.8), facecolors=[c for _, c in spans], edgecolor="white"
        )
        coll.set_gid("pod-bars")
    gantt.set_yticks(range(len(lanes)), [f"{n}  {p}" for n, p in lanes], fontsize=LABEL_SIZE)
    gantt.set_ylim(len(lanes) - 0.5, -0.5)  # first lane on top
    gantt.set_ylabel("pod, grouped by node", fontsize=LABEL_SIZE + 1)
    prev = None
    for i, (node, _pod) in enumerate(lanes):
        if prev is not None and node != prev:
            gantt.axhline(i - 0.5, color="#888", linewidth=0.8)
        prev = node
    gantt.tick_params(axis="x", labelbottom=True, labelsize=LABEL_SIZE)
    gantt.set_xlabel(xlabel, fontsize=LABEL_SIZE + 1)
    fig.suptitle(title or "pod lifetimes per node", fontsize=LABEL_SIZE + 3)

    handles: list[Any] = [Patch(color=colour[r], label=f"ready, {r}") for r in revisions]
    handles.append(Patch(color=_NOT_READY, label="running, not ready"))
    if window is not None and window.end > window.start:
        for ax in (gantt, bottom):
            span = ax.axvspan(window.start, window.end, color=_WINDOW, alpha=0.45, zorder=0, linewidth=0)
            span.set_gid("window")
        # said above the chart (axes coordinates > 1), so it never covers a bar
        note = gantt.annotate(
            window.label,
            xy=((window.start + window.end) / 2, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=LABEL_SIZE,
            color="#8a5300",
            annotation_clip=False,
        )
        note.set_gid("window-label")
        handles.append(Patch(color=_WINDOW, alpha=0.6, label=window.label))
    i = 0
    for label, t in (markers or {}).items():
        if t is None:
            continue
        style: dict[str, Any] = {
            "color": _MARKER_COLOURS[i % len(_MARKER_COLOURS)],
            "linestyle": _MARKER_STYLES[i % len(_MARKER_STYLES)],
            "linewidth": 1.4,
        }
        for ax in (gantt, bottom):
            ax.axvline(t, **style).set_gid("marker")
        handles.append(Line2D([], [], label=f"{label} ({_fmt(t)})", **style))
        i += 1
    fig.legend(handles=handles, loc="outside right upper", fontsize=LABEL_SIZE, frameon=False)

    series = ready_series(df, exclude_node=exclude_node)
    bottom_handles: list[Any] = []
    if len(series):
        t0 = float(df["t"].min())
        xs = [t0, *series["t"].tolist(), float(df["t"].max())]
        vals = [int(series["ready"].iloc[0]), *series["ready"].tolist(), int(series["ready"].iloc[-1])]
        (line,) = bottom.step(
            xs,
            vals,
            where="post",
            color="#2ca02c",
            label="ready replicas" + (f" (not on {exclude_node})" if exclude_node else ""),
        )
        line.set_gid("ready-line")
        bottom_handles.append(line)
    probe = df[df["source"] == "probe"]
    failed = probe[probe["ok"] == False]  # noqa: E712 (pandas element-wise)
    (ticks,) = bottom.plot(
        failed["t"].astype(float).tolist(),
        [0.0] * len(failed),
        linestyle="none",
        marker="|",
        markersize=14,
        color="red",
        label=f"failed requests ({len(failed)} of {len(probe)})",
    )
    ticks.set_gid("failed-requests")
    bottom_handles.append(ticks)
    bottom.set_ylabel("ready pods", fontsize=LABEL_SIZE + 1)
    bottom.set_xlabel(xlabel, fontsize=LABEL_SIZE + 1)
    bottom.tick_params(labelsize=LABEL_SIZE)
    bottom.set_ylim(bottom=-0.5)
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.legend(handles=bottom_handles, loc="outside right lower", fontsize=LABEL_SIZE, frameon=False)
    return fig


def round_robin_figure(table: pandas.DataFrame, *, title: str = "requests per pod") -> ResultFigure:
    """A bar chart of a round-robin table: requests per pod, coloured by the pod's node (when the
    table has a `node` column, as `Experiments.round_robin` gives it)."""
    from matplotlib.patches import Patch

    fig = ResultFigure(figsize=(8, 3.6), layout="constrained")
    ax = fig.subplots()
    rows = table.sort_values(["node", "pod"]) if "node" in table.columns else table
    nodes = [str(n) if n else "(no node)" for n in rows["node"]] if "node" in rows.columns else []
    node_colour = {n: _PALETTE[i % len(_PALETTE)] for i, n in enumerate(dict.fromkeys(nodes))}
    colours = [node_colour[n] for n in nodes] if nodes else ["#1f77b4"] * len(rows)
    bars = ax.bar(rows["pod"].astype(str), rows["requests"].astype(int), color=colours)
    for patch in bars.patches:
        patch.set_gid("round-robin")
    ax.set_ylabel("requests answered", fontsize=LABEL_SIZE + 1)
    ax.set_xlabel("pod", fontsize=LABEL_SIZE + 1)
    ax.set_title(title, fontsize=LABEL_SIZE + 2)
    ax.tick_params(axis="x", labelrotation=30, labelsize=LABEL_SIZE)
    ax.tick_params(axis="y", labelsize=LABEL_SIZE)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if node_colour:
        fig.legend(
            handles=[Patch(color=c, label=n) for n, c in node_colour.items()],
            title="node",
            loc="outside right upper",
            fontsize=LABEL_SIZE,
            title_fontsize=LABEL_SIZE,
            frameon=False,
        )
    return fig
