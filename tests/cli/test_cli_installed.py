"""`nbkube demo` from an installed nbkube (`pip install .`, not editable), run from an unrelated folder.

The demo's manifests ship in the package (nbkube.examples), so it needs no checkout; its report
goes to ~/.nbkube/reports unless `--out` names a folder, never into the working directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nbk_install import INSTALL_TIMEOUT, clean_env, copy_checkout, fresh_venv  # noqa: E402

from nbkube.cli.cmd_demo import default_report_dir, demo_manifests  # noqa: E402


def test_demo_manifests_come_from_the_package() -> None:
    import nbkube

    package = Path(nbkube.__file__).parent
    for path in demo_manifests():
        assert Path(path).is_file() and Path(path).is_relative_to(package / "examples" / "rootless")


def test_reports_default_to_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = Path(default_report_dir())
    assert folder.parent == tmp_path / ".nbkube" / "reports" and folder.name.startswith("demo-")


@pytest.mark.slow
def test_installed_demo_runs_from_any_folder_and_reports_under_home(tmp_path: Path) -> None:
    repo = copy_checkout(tmp_path / "repo")
    python = fresh_venv(tmp_path / "venv")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(repo)],
        env=clean_env(),
        check=True,
        capture_output=True,
        timeout=INSTALL_TIMEOUT,
        cwd=tmp_path,
    )
    home, cwd = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    cwd.mkdir()
    done = subprocess.run(
        [
            str(python.parent / "nbkube"),
            "demo",
            "--runtime",
            "sim",
            "--nodes",
            "2",
            "--requests",
            "5",
            "--cluster-store",
            "memory",
        ],
        cwd=cwd,
        env=clean_env(HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    reports = list((home / ".nbkube" / "reports").glob("demo-*/report.html"))
    assert len(reports) == 1 and f"report: {reports[0]}" in done.stdout
    assert os.listdir(cwd) == []  # nothing in the working directory
