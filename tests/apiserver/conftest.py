"""Fixtures for the API server tests: a Registry over in-memory SQLite served on 127.0.0.1, a
kubeconfig for it, and a bounded `kubectl` runner."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from nbk_apitest import KUBECTL, Kubectl

from nbkube.apiserver import ApiServer, serve
from nbkube.registry.registry import Registry
from nbkube.store import open_store


@pytest.fixture
def registry() -> Iterator[Registry]:
    reg = Registry(open_store("sqlite://:memory:"))
    yield reg
    reg.close()


@pytest.fixture
def server(registry: Registry, tmp_path: Any) -> Iterator[ApiServer]:
    srv = serve(registry, folder=str(tmp_path / "pki"))
    yield srv
    srv.stop()


@pytest.fixture
def kubeconfig(server: ApiServer, tmp_path: Any) -> str:
    return server.write_kubeconfig(str(tmp_path / "kubeconfig"))


@pytest.fixture
def kubectl(kubeconfig: str, tmp_path: Any) -> Kubectl:
    assert KUBECTL is not None, "kubectl is not installed: these tests need the real kubectl"
    home = tmp_path / "home"
    home.mkdir()
    return Kubectl(kubeconfig, str(home))
