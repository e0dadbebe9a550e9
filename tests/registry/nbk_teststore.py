"""The store the registry and client tests run on: a fresh in-memory SQLite store per test.

(While the store backends were being written in parallel this module held a small in-memory fake;
now the real embedded backend is used, so these tests also exercise it.)"""

from __future__ import annotations

import os
import threading
import time

from nbkube.store import open_store
from nbkube.store.base import Store


def make_store() -> Store:
    """SQLite in memory; or, with NBKUBE_REGISTRY_TEST_ETCD=etcd://host:port, that (scratch!)
    etcd with everything under /registry/ wiped first, to run these suites over a real etcd."""
    url = os.environ.get("NBKUBE_REGISTRY_TEST_ETCD")
    if not url:
        return open_store("sqlite://:memory:")
    store = open_store(url)
    kvs, _rev = store.list("/registry/")
    for kv in kvs:
        store.delete(kv.key)
    return store


def leftover_threads(before: set[threading.Thread], grace: float = 2.0) -> list[str]:
    """Names of threads started since `before` that are still alive after `grace` seconds."""
    deadline = time.monotonic() + grace
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() >= deadline:
            return [t.name for t in extra]
        extra[0].join(0.05)
