"""Fixtures for the CLI tests: `nbkube` run in-process on a scratch SQLite store and a scratch HOME.

Every test gets its own store file (through NBKUBE_STORE) and a HOME under tmp_path, so no test can
read or write the user's real `~/.nbkube/store.db`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from nbk_clitest import Result, Run

from nbkube.cli import main


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    url = f"sqlite://{tmp_path / 'store.db'}"
    monkeypatch.setenv("NBKUBE_STORE", url)
    return url


@pytest.fixture
def nbkube(store_url: str, capsys: pytest.CaptureFixture[str]) -> Run:
    """`nbkube("get", "rc")` -> Result(code, stdout, stderr) of one in-process invocation."""

    def run(*argv: str) -> Result:
        capsys.readouterr()  # drop anything printed before this invocation
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    assert left == []
