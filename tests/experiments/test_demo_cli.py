"""`nbkube demo` end to end on runtime sim (the rootless fallback), in-process through `main`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nbkube.cli import main
from nbkube.cli.cmd_demo import TextProgress


@pytest.mark.slow
def test_demo_runs_end_to_end_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    assert (
        main(["demo", "--runtime", "sim", "--out", str(out), "--requests", "20", "--cluster-store", "memory"])
        == 0
    )
    text = capsys.readouterr().out
    assert "runtime sim (asked for)" in text.splitlines()[0]
    assert "round robin: 20 requests" in text and "time to detect (node NotReady)" in text
    assert "time to complete" in text and f"report: {out / 'report.html'}" in text
    files = set(os.listdir(out))
    assert {
        "report.html",
        "failover.png",
        "rollout.png",
        "round-robin.png",
        "failover.csv",
        "rollout.md",
    } <= files
    html = (out / "report.html").read_text()
    assert html.count("<img src=") == 3


def test_demo_refuses_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--nodes", "1", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --nodes must be from 2 to 10, got 1"]
    assert not (tmp_path / "x").exists()


def test_text_progress_prints_a_line_per_step() -> None:
    lines: list[str] = []
    progress = TextProgress(lines.append)
    for f in (0.0, 0.05, 0.1, 0.3, 0.3, 1.0):
        progress("waiting", f)
    progress("next", 0.0)
    assert lines == ["  [  0%] waiting", "  [ 30%] waiting", "  [100%] waiting", "  [  0%] next"]


@pytest.mark.slow
def test_demo_on_the_process_runtime(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    assert main(["demo", "--runtime", "process", "--out", str(out), "--requests", "10"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("runtime process:") and "demo done in" in text
    assert (out / "failover.png").exists() and (out / "rollout-data.csv").exists()
