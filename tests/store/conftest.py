"""Fixtures for the store contract suite: one `backend` fixture parametrised over every Store.

The etcd backend is a real etcd: the one named by NBKUBE_TEST_ETCD when set (tests then keep to a
unique key prefix each, so they cannot collide with other users), else a private one launched once
per session from the host's binary. Without a binary the etcd cases skip, unless
NBKUBE_REQUIRE_ETCD=1 (CI) turns that into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from nbk_storetest import Backend

from nbkube.store import open_store
from nbkube.store.etcd_server import etcd_available, launch_etcd


@pytest.fixture(scope="session")
def etcd_url() -> Iterator[str]:
    given = os.environ.get("NBKUBE_TEST_ETCD")
    if given:
        yield given
        return
    if not etcd_available():
        message = "no etcd binary on PATH and NBKUBE_TEST_ETCD is not set"
        if os.environ.get("NBKUBE_REQUIRE_ETCD") == "1":
            pytest.fail(f"NBKUBE_REQUIRE_ETCD=1 but {message}")
        pytest.skip(message)
    with launch_etcd() as server:
        yield server.url


@pytest.fixture(
    params=["sqlite-memory", "sqlite-file", pytest.param("etcd", marks=pytest.mark.etcd)],
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    name = request.param
    if name == "sqlite-memory":
        url = "sqlite://:memory:"
    elif name == "sqlite-file":
        url = f"sqlite://{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("etcd_url")
    store = open_store(url)
    try:
        yield Backend(name, store, f"/nbkube-test/{uuid.uuid4().hex[:10]}/")
    finally:
        store.close()
