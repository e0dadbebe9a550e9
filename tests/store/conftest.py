"""Fixtures for the store contract suite: one `backend` fixture parametrised over every Store.

The etcd backend is a real etcd, from the session fixture `etcd_url` of tests/conftest.py (tests
keep to a unique key prefix each, so they cannot collide with other users of a shared etcd).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from nbk_storetest import Backend

from nbkube.store import open_store


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
