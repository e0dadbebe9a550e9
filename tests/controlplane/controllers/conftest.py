"""Fixtures for the workload controller tests: a Registry on sqlite://:memory:, a shared informer
factory, and a fake "kubelet" that binds every new pod to a node and marks it Running and Ready
(or holds it not-ready on request), so controllers see a live cluster without a scheduler."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent.parent / "registry"))
sys.path.insert(0, str(Path(__file__).parent))

from nbk_teststore import leftover_threads, make_store  # noqa: E402
from nbk_workload_helpers import FakeKubelet  # noqa: E402

from nbkube.client.informer import InformerFactory  # noqa: E402
from nbkube.registry.registry import Registry  # noqa: E402


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


@pytest.fixture
def kubelet(api: Registry) -> Iterator[FakeKubelet]:
    k = FakeKubelet(api)
    k.start()
    yield k
    k.stop()


@pytest.fixture
def factory(api: Registry) -> Iterator[InformerFactory]:
    f = InformerFactory(api)
    yield f
    f.stop_all()
