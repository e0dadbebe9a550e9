"""Fixtures for the notebook tests: a Registry on sqlite://:memory:, helpers to make objects, and a
counting comm so widgets run headless (no kernel) while every message they would send is recorded."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "registry"))

from nbk_nbtest import CountingComm  # noqa: E402
from nbk_teststore import leftover_threads  # noqa: E402

from nbkube.registry.registry import Registry  # noqa: E402
from nbkube.store import open_store  # noqa: E402


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> list[CountingComm]:
    """Every comm created while the test runs (one per widget)."""
    import comm

    created: list[CountingComm] = []

    def create_comm(*_args: Any, **kwargs: Any) -> CountingComm:
        c = CountingComm(**kwargs)
        created.append(c)
        return c

    monkeypatch.setattr(comm, "create_comm", create_comm)
    return created


@pytest.fixture
def api() -> Iterator[Registry]:
    reg = Registry(open_store("sqlite://:memory:"))
    yield reg
    reg.close()


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    assert leftover_threads(before) == []
