"""Fixtures shared by every suite: the Docker engine, for the tests that drive real containers, and
a real etcd for the store, registry and security suites.

`etcd_url` is the etcd named by NBKUBE_TEST_ETCD when set, else a private one launched once per
session from the host's binary. Without a binary its tests skip, unless NBKUBE_REQUIRE_ETCD=1 (CI)
turns that into a failure; `etcd_binary` does the same for tests that launch their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from nbkube.store.etcd_server import etcd_available, launch_etcd


def docker_or_skip() -> Any:
    """A Docker client, or skip (fail when NBKUBE_REQUIRE_DOCKER=1) saying why there is none."""
    reason = ""
    client = None
    if os.geteuid() != 0:
        reason = "Docker tests need root"
    else:
        try:
            import docker

            client = docker.from_env(timeout=60)
            client.ping()
        except Exception as exc:
            reason = f"no Docker daemon answers: {exc}"
    if reason:
        if os.environ.get("NBKUBE_REQUIRE_DOCKER") == "1":
            pytest.fail(f"NBKUBE_REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(reason)
    return client


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    client = docker_or_skip()
    yield client
    client.close()


def etcd_or_skip() -> None:
    """Skip (fail when NBKUBE_REQUIRE_ETCD=1) when no etcd can be launched here."""
    if not etcd_available():
        message = "no etcd binary on PATH"
        if os.environ.get("NBKUBE_REQUIRE_ETCD") == "1":
            pytest.fail(f"NBKUBE_REQUIRE_ETCD=1 but {message}")
        pytest.skip(message)


@pytest.fixture
def etcd_binary() -> None:
    """For tests that launch an etcd of their own (with its data where they can look at it)."""
    etcd_or_skip()


@pytest.fixture(scope="session")
def etcd_url() -> Iterator[str]:
    given = os.environ.get("NBKUBE_TEST_ETCD")
    if given:
        yield given
        return
    etcd_or_skip()
    with launch_etcd() as server:
        yield server.url
