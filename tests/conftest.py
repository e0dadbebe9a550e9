"""Fixtures shared by every suite: the Docker engine, for the tests that drive real containers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


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
