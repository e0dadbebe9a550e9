"""Fixtures for the registry tests: a Registry over an in-memory SQLite store (or, while that
backend is absent, over the small in-memory fake in nbk_memstore.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from nbk_memstore import make_store  # noqa: E402

from nbkube.clock import FakeClock  # noqa: E402
from nbkube.registry.registry import Registry  # noqa: E402


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api(clock: FakeClock) -> Iterator[Registry]:
    reg = Registry(make_store(), clock=clock)  # type: ignore[arg-type]
    yield reg
    reg.close()
