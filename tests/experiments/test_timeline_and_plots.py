"""Summaries and plots are rebuilt from a DataFrame alone: checked on a hand-made failover frame."""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from nbkube.experiments.failover import FailoverResult, failover_summary
from nbkube.experiments.results import build_frame
from nbkube.experiments.timeline import pod_intervals, ready_series

T0 = 1_700_000_000.0


def _pod(
    t: float, pod: str, node: str, ready: bool, gone: bool = False, rev: str = "busybox"
) -> dict[str, Any]:
    return {
        "time": T0 + t,
        "pod": pod,
        "node": node,
        "phase": "Running",
        "ready": ready,
        "deleting": gone,
        "gone": gone,
        "controller": "ReplicationController/web",
        "revision": rev,
        "image": rev,
    }


def _frame() -> pd.DataFrame:
    pods = [
        _pod(-1, "a", "node-1", True), _pod(-1, "b", "node-2", True),
        _pod(2.0, "a", "node-1", False),  # marked not ready once the node is NotReady
        _pod(2.5, "a", "node-1", False, gone=True),
        _pod(2.6, "c", "node-2", False), _pod(3.0, "c", "node-2", True),
    ]  # fmt: skip
    events = pd.DataFrame(
        [
            {"time": T0 + 1.9, "namespace": "default", "kind": "Node", "name": "node-1", "reason": "NodeNotReady",
             "message": "", "type": "Warning", "component": "node-lifecycle"},
            {"time": T0 + 2.4, "namespace": "default", "kind": "Pod", "name": "a",
             "reason": "TaintManagerEviction", "message": "", "type": "Normal", "component": "node-lifecycle"},
        ]
    )  # fmt: skip
    events["time"] = pd.to_datetime(events["time"], unit="s", utc=True)
    probe = pd.DataFrame(
        [{"time": T0 + t, "ok": ok, "latency": 0.01, "status": 200 if ok else 0, "pod": "", "error": ""}
         for t, ok in [(-0.5, True), (0.5, False), (1.5, False), (3.5, True)]]
    )  # fmt: skip
    probe["time"] = pd.to_datetime(probe["time"], unit="s", utc=True)
    actions = [
        {
            "time": T0,
            "kind": "Node",
            "name": "node-1",
            "reason": "KillNode",
            "message": "power-off",
            "value": 2,
        },
        {"time": T0 + 3.2, "kind": "ReplicationController", "name": "web", "reason": "Recovered", "value": 2},
    ]
    return build_frame(events, probe, pods, actions, T0 - 1, T0 + 4)


def test_frame_has_every_source_on_one_time_axis() -> None:
    df = _frame()
    assert set(df["source"]) == {"event", "probe", "pod", "action"}
    assert df["time"].is_monotonic_increasing
    kill = df[df["reason"] == "KillNode"]
    assert float(kill["t"].iloc[0]) == 0.0


def test_intervals_and_ready_series() -> None:
    df = _frame()
    iv = pod_intervals(df)
    a = iv[iv["pod"] == "a"]
    assert list(a["ready"]) == [True, False] and not a["open"].any()
    assert list(a["end"]) == [2.0, 2.5]
    c = iv[iv["pod"] == "c"]
    assert list(c["ready"]) == [False, True] and c["open"].iloc[-1]
    series = ready_series(df, exclude_node="node-1")
    assert series["ready"].tolist()[0] == 1 and series["ready"].tolist()[-1] == 2


def test_failover_summary_from_the_frame() -> None:
    summary = failover_summary(_frame()).set_index("metric")["value"]
    assert summary["time to detect (node NotReady)"] == 1.9
    assert summary["time to evict (first pod marked for deletion)"] == 2.4
    assert summary["time to reschedule (all pods scheduled elsewhere)"] == 2.6
    assert summary["time to ready (all replicas ready elsewhere)"] == 3.0
    assert summary["requests sent"] == 4 and summary["requests failed"] == 2
    assert summary["longest outage (first to last failed request)"] == 1.0


def test_plot_has_bars_ready_line_and_red_ticks() -> None:
    result = FailoverResult(_frame(), title="t")
    fig = result.plot()
    assert isinstance(fig, Figure)
    gantt, bottom = fig.axes[:2]
    bars = [c for c in gantt.collections if isinstance(c, PolyCollection) and c.get_gid() == "pod-bars"]
    assert sum(len(b.get_paths()) for b in bars) == len(pod_intervals(result.df))
    (ready,) = [ln for ln in bottom.lines if ln.get_gid() == "ready-line"]
    assert max(ready.get_ydata()) == 2
    (ticks,) = [ln for ln in bottom.lines if ln.get_gid() == "failed-requests"]
    assert ticks.get_color() == "red" and list(ticks.get_xdata()) == [0.5, 1.5]
    assert [t.get_text() for t in gantt.get_yticklabels()] == ["node-1  a", "node-2  b", "node-2  c"]
    assert "src='data:image/png;base64," in result._repr_html_()


def test_markers_sit_at_the_summary_times_and_the_detection_window_is_shaded() -> None:
    result = FailoverResult(_frame(), title="t")
    summary = result.summary.set_index("metric")["value"]
    fig = result.plot()
    gantt = fig.axes[0]
    marker_x = sorted({float(ln.get_xdata()[0]) for ln in gantt.lines if ln.get_gid() == "marker"})
    assert marker_x == sorted(
        {0.0}
        | {
            float(summary[m])
            for m in (
                "time to detect (node NotReady)",
                "time to evict (first pod marked for deletion)",
                "time to ready (all replicas ready elsewhere)",
            )
        }
    )
    legend_texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert "all ready elsewhere (3 s)" in legend_texts and "API marks it NotReady (1.9 s)" in legend_texts
    (window,) = [p for p in gantt.patches if p.get_gid() == "window"]
    assert window.get_x() == 0.0 and window.get_x() + window.get_width() == 1.9
    labels = [t for t in gantt.texts if t.get_gid() == "window-label"]
    assert labels and labels[0].get_text() == "the API has not noticed yet"
    assert "the API has not noticed yet" in legend_texts


def test_labels_stay_off_the_bars_and_are_readable() -> None:
    fig = FailoverResult(_frame(), title="t").plot()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    gantt, bottom = fig.axes[:2]
    renderer = canvas.get_renderer()
    data_box = gantt.get_window_extent(renderer)
    # the legends sit outside both panels' data areas
    for legend in fig.legends:
        box = legend.get_window_extent(renderer)
        for ax in (gantt, bottom):
            assert not box.overlaps(ax.get_window_extent(renderer))
    # the window's label is above the chart, not on a bar
    (label,) = [t for t in gantt.texts if t.get_gid() == "window-label"]
    assert label.get_window_extent(renderer).y0 >= data_box.y1 - 1
    assert all(t.get_fontsize() >= 9 for t in gantt.get_yticklabels())
    assert gantt.get_ylabel() and gantt.get_xlabel() and bottom.get_ylabel() and bottom.get_xlabel()


def test_a_result_shows_once_as_png_and_tells_its_story() -> None:
    result = FailoverResult(_frame(), title="t")
    assert result._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.plot()._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    story = result.story()
    assert "1.9 s" in story and "3 s" in story and "2 of 4 requests failed" in story
    html = result._repr_html_()
    assert html.index("<table") < html.index("<img") and story.split(".")[0] in html
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # nothing in pyplot's state for Jupyter to show a second time


def test_round_robin_bars_are_coloured_by_node_with_axis_labels() -> None:
    from nbkube.experiments.plots import round_robin_figure

    table = pd.DataFrame(
        {
            "pod": ["a", "b", "c"],
            "node": ["node-2", "node-1", "node-2"],
            "requests": [3, 4, 3],
            "share": [0.3, 0.4, 0.3],
        }
    )
    fig = round_robin_figure(table)
    ax = fig.axes[0]
    bars = [p for p in ax.patches if p.get_gid() == "round-robin"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["b", "a", "c"]  # grouped by node
    assert bars[1].get_facecolor() == bars[2].get_facecolor() != bars[0].get_facecolor()
    assert ax.get_xlabel() == "pod" and ax.get_ylabel() == "requests answered"
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["node-1", "node-2"]
