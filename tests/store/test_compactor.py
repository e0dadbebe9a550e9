"""Compactor: each tick compacts to the revision the previous tick saw, never further."""

from __future__ import annotations

import pytest

from nbkube.store import open_store
from nbkube.store.base import Compacted
from nbkube.store.compactor import Compactor


def test_ticks_compact_to_the_previous_ticks_revision() -> None:
    store = open_store("sqlite://:memory:")
    try:
        rev1 = store.create("/registry/configmaps/default/a", b'{"v":1}')
        c = Compactor(store, interval=3600)
        assert c.tick() == 0  # nothing seen before: nothing compacted, rev1 remembered
        rev2 = store.update("/registry/configmaps/default/a", b'{"v":2}', rev1)
        store.update("/registry/configmaps/default/a", b'{"v":3}', rev2)
        assert c.tick() == rev1
        assert c.tick() == rev2 + 1  # what the second tick saw
        assert c.tick() == 0  # nothing written since: nothing to do
        with pytest.raises(Compacted):
            store.watch("/registry/configmaps/", rev1 - 1)
        kv = store.get("/registry/configmaps/default/a")
        assert kv is not None and kv.value == b'{"v":3}'
    finally:
        store.close()


def test_start_and_stop_own_one_thread() -> None:
    store = open_store("sqlite://:memory:")
    c = Compactor(store, interval=3600)
    c.start()
    c.stop()
    store.close()
    with pytest.raises(ValueError):
        Compactor(store, interval=0)
