"""Timeline figures built from an experiment's DataFrame alone (no cluster needed to redraw them).

Who calls it: `FailoverResult.plot()` / `RolloutResult.plot()`, report.py and `nbkube demo`.
Figures are made with `matplotlib.figure.Figure` directly, not pyplot, so drawing works from any
thread and without a GUI backend; a notebook shows them inline, the demo saves PNGs.

Top panel: a Gantt chart, one lane per pod grouped by node, bars coloured by revision (pale while the
pod is not ready). Bottom panel: ready replicas as a step line, and failed probe requests as red ticks.
Artists carry gids ("pod-bars", "ready-line", "failed-requests", "action") so tests can find them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbkube.experiments.timeline import pod_intervals, ready_series

if TYPE_CHECKING:
    import pandas
    from matplotlib.figure import Figure

__all__ = ["timeline_figure", "round_robin_figure"]

_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def timeline_figure(
    df: pandas.DataFrame,
    *,
    title: str = "",
    markers: dict[str, float | None] | None = None,
    exclude_node: str = "",
) -> Figure:
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    fig = Figure(figsize=(10, 6.5), layout="constrained")
    gantt, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    iv = pod_intervals(df)
    revisions = list(dict.fromkeys(iv["revision"])) if len(iv) else []
    colour = {rev: _PALETTE[i % len(_PALETTE)] for i, rev in enumerate(revisions)}

    # one lane per (node, pod), nodes in order, pods by first start
    lanes: list[tuple[str, str]] = []
    if len(iv):
        first = iv.groupby(["node", "pod"])["start"].min().reset_index().sort_values(["node", "start"])
        lanes = [(str(n), str(p)) for n, p in zip(first["node"], first["pod"], strict=True)]
    lane_of = {lane: i for i, lane in enumerate(lanes)}
    bars: list[tuple[float, float]] = []
    colours: list[Any] = []
    ys: list[int] = []
    for r in iv.itertuples(index=False):
        bars.append((float(r.start), max(float(r.end) - float(r.start), 1e-3)))
        colours.append(colour[str(r.revision)] if r.ready else "#d9d9d9")
        ys.append(lane_of[(str(r.node), str(r.pod))])
    for y in sorted(set(ys)):
        sel = [i for i, yy in enumerate(ys) if yy == y]
        coll = gantt.broken_barh(
            [bars[i] for i in sel], (y - 0.4, 0.8), facecolors=[colours[i] for i in sel], edgecolor="white"
        )
        coll.set_gid("pod-bars")
    gantt.set_yticks(range(len(lanes)), [f"{n}  {p}" for n, p in lanes], fontsize=7)
    gantt.invert_yaxis()
    prev = None
    for i, (node, _pod) in enumerate(lanes):
        if prev is not None and node != prev:
            gantt.axhline(i - 0.5, color="#888", linewidth=0.6)
        prev = node
    handles = [Patch(color=colour[r], label=str(r)) for r in revisions]
    handles.append(Patch(color="#d9d9d9", label="not ready"))
    gantt.legend(handles=handles, loc="upper right", fontsize=7, title="revision", title_fontsize=7)
    gantt.set_title(title or "pod lifetimes per node")

    series = ready_series(df, exclude_node=exclude_node)
    if len(series):
        t0 = float(df["t"].min())
        xs = [t0, *series["t"].tolist(), float(df["t"].max())]
        vals = [int(series["ready"].iloc[0]), *series["ready"].tolist(), int(series["ready"].iloc[-1])]
        (line,) = bottom.step(xs, vals, where="post", color="#2ca02c", label="ready replicas")
        line.set_gid("ready-line")
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
    for label, t in (markers or {}).items():
        if t is None:
            continue
        for ax in (gantt, bottom):
            vline = ax.axvline(t, color="#444", linestyle="--", linewidth=0.8)
            vline.set_gid("action")
        gantt.annotate(
            label,
            (t, 0),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            rotation=90,
            va="bottom",
            ha="right",
        )
    bottom.set_ylabel("ready")
    bottom.set_xlabel("seconds since the action")
    bottom.set_ylim(bottom=-0.5)
    bottom.legend(loc="lower right", fontsize=7)
    return fig


def round_robin_figure(table: pandas.DataFrame, *, title: str = "requests per pod") -> Figure:
    """A bar chart of `probe.round_robin()`'s table."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3), layout="constrained")
    ax = fig.subplots()
    bars = ax.bar(table["pod"].astype(str), table["requests"].astype(int), color="#1f77b4")
    for patch in bars.patches:
        patch.set_gid("round-robin")
    ax.set_ylabel("requests")
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    return fig
