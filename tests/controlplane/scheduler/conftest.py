"""Fixtures for the scheduler tests: object builders on sys.path, a Registry on sqlite://:memory:,
and a check that no test leaves a thread behind."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent.parent / "registry"))
sys.path.insert(0, str(Path(__file__).parent))

from nbk_teststore import leftover_threads  # noqa: E402

from nbkube.registry.registry import Registry  # noqa: E402
from nbkube.store import open_store  # noqa: E402


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
