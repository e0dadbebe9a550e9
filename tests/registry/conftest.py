"""Fixtures for the registry tests: a Registry over a fresh in-memory SQLite store."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from nbk_teststore import leftover_threads, make_store  # noqa: E402

from nbkube.clock import FakeClock  # noqa: E402
from nbkube.registry.registry import Registry  # noqa: E402


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api(clock: FakeClock) -> Iterator[Registry]:
    reg = Registry(make_store(), clock=clock)
    yield reg
    reg.close()


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    assert leftover_threads(before) == []
