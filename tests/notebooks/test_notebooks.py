"""Every notebook in notebooks/ runs top to bottom in a real kernel (nbclient) without an error.

The quickstart must also show a widget view (the dashboard, left live at its end), the coloured pod
table and a PNG plot. Nothing may reach stderr. The other notebooks stop their own cluster.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
CELL_TIMEOUT = 180


def _run(name: str) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    return nb


def _mimetypes(nb: nbformat.NotebookNode) -> list[str]:
    found: list[str] = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            found.extend((out.get("data") or {}).keys())
    return found


def test_the_notebooks_are_there_and_committed_without_outputs() -> None:
    assert NAMES == [
        "01-quickstart.ipynb",
        "02-rolling-update.ipynb",
        "03-failover-timing.ipynb",
        "04-maintenance-and-quotas.ipynb",
        "05-scale.ipynb",
        "06-autoscaling.ipynb",
    ]
    for name in NAMES:
        nb = json.loads((NOTEBOOKS / name).read_text())
        for cell in nb["cells"]:
            assert cell.get("outputs", []) == [] and cell.get("execution_count") is None, name


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name: str) -> None:
    nb = _run(name)
    errors = [
        out for cell in nb.cells for out in cell.get("outputs", []) if out.get("output_type") == "error"
    ]
    assert errors == []
    stderr = [
        out.get("text", "")
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream" and out.get("name") == "stderr"
    ]
    assert stderr == []  # a warning or a log line is a red box in the notebook
    if name.startswith("01-"):
        kinds = _mimetypes(nb)
        assert "application/vnd.jupyter.widget-view+json" in kinds
        assert "image/png" in kinds
        tables = [
            (out.get("data") or {}).get("text/html", "")
            for cell in nb.cells
            for out in cell.get("outputs", [])
        ]
        assert any("<table" in t for t in tables)
        assert any("nbk-table" in t for t in tables)  # the coloured pod table, not only a DataFrame
        # Run All leaves the dashboard live: the last output is the widget, and no cell stops the cluster
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        assert "application/vnd.jupyter.widget-view+json" in (code[-1].outputs[-1].get("data") or {})
        assert not any("cluster.stop()" in cell.source for cell in code)
