"""Fixtures for the client tests: a Registry over an in-memory store (see tests/registry)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "registry"))

from nbk_teststore import leftover_threads, make_store  # noqa: E402

from nbkube.clock import FakeClock  # noqa: E402
from nbkube.registry.registry import Registry  # noqa: E402


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api() -> Iterator[Registry]:
    reg = Registry(make_store())
    yield reg
    reg.close()


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    assert leftover_threads(before) == []
