"""Notebook glue for the timing experiments: a progress bar widget, and results shown as table + plot.

Who calls it: the notebooks (`ex = experiments_for(cluster)`; `ex.failover(...)` shows a bar that
fills while it waits) and whatever makes `cluster.experiments` in a kernel. The experiments
themselves (nbkube.experiments) know nothing of IPython: they call a `progress(message, fraction)`
callable, which in the terminal prints lines and here moves a FloatProgress. The experiment runs in
the cell's own thread, so the bar's trait updates are sent from the thread that owns the cell output.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from nbkube.experiments import ExperimentResult, Experiments, FailoverResult, RolloutResult

__all__ = ["ProgressBar", "NotebookExperiments", "experiments_for", "show_result"]


class ProgressBar(widgets.HBox):
    """A bar and a label; call it as `bar(message, fraction)`. Displays itself on the first call."""

    def __init__(self, description: str = "", *, autodisplay: bool = True):
        self.bar = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, description=description)
        self.label = widgets.Label(value="")
        super().__init__([self.bar, self.label])
        self._autodisplay = autodisplay
        self._shown = False

    def __call__(self, message: str, fraction: float) -> None:
        if self._autodisplay and not self._shown:
            from IPython.display import display

            display(self)
            self._shown = True
        with self.hold_sync():
            self.bar.value = max(0.0, min(1.0, float(fraction)))
            self.label.value = message
            self.bar.bar_style = "success" if fraction >= 1.0 else ""

    def fail(self, message: str) -> None:
        self.bar.bar_style = "danger"
        self.label.value = message


class NotebookExperiments(Experiments):
    """Experiments whose long waits show a fresh progress bar per call."""

    def failover(self, node: str, probe: Any = None, **kwargs: Any) -> FailoverResult:
        kwargs.setdefault("progress", ProgressBar("failover"))
        return super().failover(node, probe, **kwargs)

    def rollout(self, controller: str, image: str, probe: Any = None, **kwargs: Any) -> RolloutResult:
        kwargs.setdefault("progress", ProgressBar("rollout"))
        return super().rollout(controller, image, probe, **kwargs)


def experiments_for(cluster: Any) -> NotebookExperiments:
    """`cluster.experiments` for a notebook: failover/rollout/round_robin with progress bars."""
    return NotebookExperiments(cluster)


def show_result(result: ExperimentResult) -> None:
    """Display a result in the cell's output: its story, summary table and plot (what it shows as a
    cell's last expression too)."""
    from IPython.display import display

    display(result)
