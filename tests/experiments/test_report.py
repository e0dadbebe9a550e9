from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from nbkube.errors import BadRequest
from nbkube.experiments.report import markdown_table, write_report


def _fig() -> Figure:
    fig = Figure()
    fig.subplots().plot([0, 1], [1, 0])
    return fig


def test_report_writes_tables_plots_and_html(tmp_path: Path) -> None:
    table = pd.DataFrame({"metric": ["time to ready", "a|b"], "value": [1.5, None], "unit": ["s", ""]})
    path = write_report(
        str(tmp_path / "out"),
        title="demo <1>",
        tables={"failover": table},
        figures={"failover": _fig()},
        data={"failover-data": pd.DataFrame({"t": [0.0, 1.0]})},
        notes=["runtime sim"],
    )
    out = tmp_path / "out"
    assert path == str(out / "report.html")
    assert sorted(os.listdir(out)) == [
        "failover-data.csv", "failover.csv", "failover.md", "failover.png", "report.html",
    ]  # fmt: skip
    assert (out / "failover.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert "<img src='failover.png'" in html and "demo &lt;1&gt;" in html and "<table" in html
    assert "runtime sim" in html and "failover-data.csv" in html
    assert pd.read_csv(out / "failover.csv")["metric"].tolist() == ["time to ready", "a|b"]
    md = (out / "failover.md").read_text().splitlines()
    assert md[0] == "| metric | value | unit |" and md[3] == "| a\\|b |  |  |"


def test_bad_names_write_nothing(tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="figure name 'Bad Name'"):
        write_report(
            str(tmp_path / "r"), tables={"ok": pd.DataFrame({"a": [1]})}, figures={"Bad Name": _fig()}
        )
    assert not (tmp_path / "r").exists()


def test_markdown_of_an_empty_table() -> None:
    assert markdown_table(pd.DataFrame(columns=["a", "b"])) == "| a | b |\n|---|---|\n"


def test_report_opens_with_the_narrative_and_puts_each_plot_beside_its_table(tmp_path: Path) -> None:
    table = pd.DataFrame({"metric": ["time to ready"], "value": [1.5], "unit": ["s"]})
    path = write_report(
        str(tmp_path / "out"),
        tables={"failover": table, "timings": pd.DataFrame({"step": ["all"], "seconds": [9.5]})},
        figures={"failover": _fig()},
        narrative=["We killed node-1; all ready elsewhere after 1.5 s."],
        texts={"failover": "the shaded stretch: the API has not noticed yet"},
    )
    html = Path(path).read_text()
    assert html.index("class='narrative'") < html.index("<h2")
    section = html[html.index("<h2 id='failover'>") : html.index("<h2 id='timings'>")]
    assert section.index("<table") < section.index("<img src='failover.png'")
    assert "class='pair'" in section and "the API has not noticed yet" in section


def test_report_texts_must_name_a_section(tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="report texts nope"):
        write_report(str(tmp_path / "r"), tables={"ok": pd.DataFrame({"a": [1]})}, texts={"nope": "x"})
    assert not (tmp_path / "r").exists()
