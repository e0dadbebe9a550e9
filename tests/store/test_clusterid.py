"""The cluster-id marker: a new store is marked, the folder's own store passes, an empty or foreign
one is refused unless a fresh cluster is asked for."""

from __future__ import annotations

import pytest

from nbkube.store import open_store
from nbkube.store.clusterid import CLUSTER_ID_KEY, WrongStore, ensure_cluster_id, read_cluster_id


def test_a_new_store_is_marked_once() -> None:
    store = open_store("sqlite://:memory:")
    first = ensure_cluster_id(store, None, "s.db", existing=False)
    assert read_cluster_id(store) == first
    assert ensure_cluster_id(store, first, "s.db", existing=True) == first
    assert store.list("/registry/")[0] == [], "the marker is not an object"


def test_an_empty_store_for_an_existing_folder_is_refused() -> None:
    store = open_store("sqlite://:memory:")
    with pytest.raises(WrongStore, match=r"^store /x/s.db is empty \(truncated or replaced\?\)"):
        ensure_cluster_id(store, "1234", "/x/s.db", existing=True)
    assert read_cluster_id(store) is None, "nothing written to a refused store"
    fresh = ensure_cluster_id(store, "1234", "/x/s.db", existing=True, fresh=True)
    assert fresh != "1234" and read_cluster_id(store) == fresh


def test_a_foreign_store_is_refused() -> None:
    store = open_store("sqlite://:memory:")
    store.create(CLUSTER_ID_KEY, b"theirs")
    with pytest.raises(WrongStore, match="belongs to another cluster"):
        ensure_cluster_id(store, "mine", "etcd://127.0.0.1:2379", existing=True)
    assert ensure_cluster_id(store, "mine", "etcd://127.0.0.1:2379", existing=True, fresh=True) == "theirs"


def test_a_store_from_before_the_marker_is_marked_not_refused() -> None:
    store = open_store("sqlite://:memory:")
    store.create("/registry/namespaces/default", b"{}")
    marked = ensure_cluster_id(store, None, "s.db", existing=True)
    assert read_cluster_id(store) == marked
    empty = open_store("sqlite://:memory:")
    with pytest.raises(WrongStore, match="is empty"):
        ensure_cluster_id(empty, None, "s.db", existing=True)
