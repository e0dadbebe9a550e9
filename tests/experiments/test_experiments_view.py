"""The notebook glue: the progress bar's traits follow the experiment's progress calls."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("ipywidgets")

from nbkube.notebook.experiments_view import NotebookExperiments, ProgressBar  # noqa: E402


def test_progress_bar_moves_and_turns_green_when_done() -> None:
    bar = ProgressBar("failover", autodisplay=False)
    bar("waiting for NotReady", 0.1)
    assert (bar.bar.value, bar.label.value, bar.bar.bar_style) == (0.1, "waiting for NotReady", "")
    bar("done", 1.5)  # clamped
    assert (bar.bar.value, bar.bar.bar_style) == (1.0, "success")
    bar.fail("timed out")
    assert (bar.bar.bar_style, bar.label.value) == ("danger", "timed out")
    assert bar.bar.description == "failover"


def test_notebook_experiments_give_each_run_a_progress_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_failover(cluster: Any, node: str, probe: Any = None, **kwargs: Any) -> str:
        seen["failover"] = kwargs["progress"]
        return "fo"

    def fake_rollout(cluster: Any, controller: str, image: str, probe: Any = None, **kwargs: Any) -> str:
        seen["rollout"] = kwargs["progress"]
        return "ro"

    monkeypatch.setattr("nbkube.experiments.failover", fake_failover)
    monkeypatch.setattr("nbkube.experiments.rollout", fake_rollout)
    ex = NotebookExperiments(cluster=None)
    assert ex.failover("node-1") == "fo" and ex.rollout("rc/x", "busybox:2") == "ro"
    assert isinstance(seen["failover"], ProgressBar) and isinstance(seen["rollout"], ProgressBar)
    assert seen["failover"] is not seen["rollout"]
