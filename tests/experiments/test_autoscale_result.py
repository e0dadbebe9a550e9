"""The autoscale experiment's result from a frame alone (reaction times, summary, story, the four
panels), the burner's manifests, and bad input refused before any load."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from nbkube.api.validation import validate
from nbkube.errors import BadRequest
from nbkube.experiments.autoscale import SAMPLE_COLUMNS, AutoscaleResult, autoscale, burner_manifests
from nbkube.experiments.probe import ProbeRecord, records_dataframe


def _result() -> AutoscaleResult:
    rows: list[dict[str, Any]] = []
    for t in range(12):
        replicas = 1 if t < 6 else 3
        ready = 1 if t < 7 else 3
        rows.append({"t": float(t), "phase": "load" if 2 <= t < 10 else "warmup", "load_rps": 10.0 if 2 <= t < 10 else 0.0,
                     "workers": 2, "cpu_m": 100 * t, "utilization": 50, "replicas": replicas, "ready": ready,
                     "desired": replicas, "p50_ms": 20.0 - t, "p95_ms": 40.0, "errors": 0})  # fmt: skip
    reqs = records_dataframe([ProbeRecord(1.0, True, 0.02, 200, "web-1", ""), ProbeRecord(2.0, False, 1.0, 0, "", "timeout")])
    return AutoscaleResult(pd.DataFrame(rows, columns=SAMPLE_COLUMNS), reqs, title="t", load=(2.0, 10.0))


def test_reaction_summary_and_story() -> None:
    r = _result()
    assert r.reaction == {"scale_up": 4.0, "new_replica_ready": 5.0}
    s = dict(zip(r.summary["metric"], r.summary["value"], strict=True))
    assert s["max replicas"] == 3 and s["requests failed"] == 1 and s["requests sent"] == 2
    assert "5 s" in r.story()


def test_plot_has_the_four_panels() -> None:
    fig = _result().plot()
    gids = {a.get_gid() for ax in fig.axes for a in ax.get_children() if a.get_gid()}
    assert {"load", "cpu", "utilization", "replicas", "ready", "p50", "p95", "load-window"} <= gids


def test_burner_manifests_are_valid_objects() -> None:
    for server in ("python", "cgi"):
        for obj in burner_manifests("web", server=server):
            assert validate(obj) == [], obj["kind"]
    with pytest.raises(BadRequest, match="server"):
        burner_manifests(server="java")


def test_bad_input_is_refused_before_any_load() -> None:
    with pytest.raises(BadRequest, match="concurrency"):
        autoscale(object(), "web", "web", concurrency=0)
    with pytest.raises(BadRequest, match="load_seconds"):
        autoscale(object(), "web", "web", load_seconds=-1)
