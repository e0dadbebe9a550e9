"""The Store contract: every backend (SQLite in memory, SQLite file, real etcd) must pass all of it."""

from __future__ import annotations

import threading

import pytest
from nbk_storetest import Backend

from nbkube.errors import BadRequest, TooLarge
from nbkube.store.base import (
    MAX_BATCH,
    MAX_VALUE_BYTES,
    BatchWrite,
    Compacted,
    KeyExists,
    KeyNotFound,
    RevisionMismatch,
    WatchEvent,
)

WAIT = 5.0  # upper bound for an event to arrive; next() returns as soon as it does


def next_event(watch, timeout: float = WAIT) -> WatchEvent:  # type: ignore[no-untyped-def]
    event = watch.next(timeout)
    assert event is not None, "no watch event arrived"
    return event


def test_create_then_get_returns_value_and_revisions(backend: Backend) -> None:
    key = backend.key("a")
    rev = backend.store.create(key, b"one")
    kv = backend.store.get(key)
    assert kv is not None
    assert (kv.key, kv.value, kv.create_revision, kv.mod_revision) == (key, b"one", rev, rev)
    assert backend.store.get(backend.key("missing")) is None


def test_create_existing_key_raises_key_exists_and_keeps_value(backend: Backend) -> None:
    key = backend.key("a")
    rev = backend.store.create(key, b"one")
    with pytest.raises(KeyExists, match="already exists"):
        backend.store.create(key, b"two")
    kv = backend.store.get(key)
    assert kv is not None and (kv.value, kv.mod_revision) == (b"one", rev)


def test_update_is_compare_and_swap_on_mod_revision(backend: Backend) -> None:
    store, key = backend.store, backend.key("a")
    created = store.create(key, b"one")
    updated = store.update(key, b"two", created)
    assert updated > created
    kv = store.get(key)
    assert kv is not None and (kv.value, kv.create_revision, kv.mod_revision) == (b"two", created, updated)

    with pytest.raises(RevisionMismatch) as info:
        store.update(key, b"stale", created)
    assert (info.value.key, info.value.expected, info.value.actual) == (key, created, updated)
    assert store.get(key).value == b"two"  # type: ignore[union-attr]

    with pytest.raises(KeyNotFound):
        store.update(backend.key("missing"), b"x", created)


def test_delete_guarded_and_unguarded(backend: Backend) -> None:
    store, key = backend.store, backend.key("a")
    rev = store.create(key, b"one")
    with pytest.raises(RevisionMismatch):
        store.delete(key, rev + 1000)
    assert store.get(key) is not None

    deleted = store.delete(key, rev)
    assert deleted > rev
    assert store.get(key) is None
    with pytest.raises(KeyNotFound):
        store.delete(key)
    with pytest.raises(KeyNotFound):
        store.update(key, b"x", deleted)

    again = store.create(key, b"two")  # a deleted key can be created afresh
    assert store.get(key).create_revision == again  # type: ignore[union-attr]
    assert store.delete(key) > again


def test_revisions_strictly_increase_and_current_revision_follows(backend: Backend) -> None:
    store = backend.store
    revs = [store.create(backend.key(f"k{i}"), b"v") for i in range(5)]
    revs.append(store.update(backend.key("k0"), b"w", revs[0]))
    revs.append(store.delete(backend.key("k1")))
    assert all(a < b for a, b in zip(revs, revs[1:], strict=False))
    assert store.current_revision() == revs[-1]


def test_list_returns_live_keys_under_prefix_sorted_with_read_revision(backend: Backend) -> None:
    store = backend.store
    for name in ["b/2", "a/1", "b/1", "c/1"]:
        store.create(backend.key(name), name.encode())
    store.create(backend.key("b"), b"not under b/")
    store.create(backend.key("bb/1"), b"not under b/ either")
    store.delete(backend.key("c/1"))

    items, rev = store.list(backend.key("b/"))
    assert [kv.key for kv in items] == [backend.key("b/1"), backend.key("b/2")]
    assert [kv.value for kv in items] == [b"b/1", b"b/2"]
    assert rev == store.current_revision()

    everything, _ = store.list(backend.prefix)
    assert [kv.key[len(backend.prefix) :] for kv in everything] == ["a/1", "b", "b/1", "b/2", "bb/1"]
    assert store.list(backend.key("none/")) == ([], rev)


def test_list_at_a_past_revision_is_that_snapshot(backend: Backend) -> None:
    store, prefix = backend.store, backend.key("s/")
    r1 = store.create(backend.key("s/a"), b"a1")
    store.create(backend.key("s/b"), b"b1")
    snapshot = store.current_revision()
    store.update(backend.key("s/a"), b"a2", r1)
    store.delete(backend.key("s/b"))
    store.create(backend.key("s/c"), b"c1")

    items, rev = store.list(prefix, revision=snapshot)
    assert rev == snapshot
    assert [(kv.key[len(prefix) :], kv.value, kv.mod_revision) for kv in items] == [
        ("a", b"a1", r1),
        ("b", b"b1", r1 + 1),
    ]
    now, _ = store.list(prefix, revision=store.current_revision())
    assert [kv.value for kv in now] == [b"a2", b"c1"]
    with pytest.raises(BadRequest):
        store.list(prefix, revision=store.current_revision() + 100)
    latest = store.current_revision()
    store.compact(latest)
    with pytest.raises(Compacted):
        store.list(prefix, revision=snapshot)
    assert [kv.value for kv in store.list(prefix, revision=latest)[0]] == [b"a2", b"c1"]


def test_watch_from_past_revision_replays_then_streams_live(backend: Backend) -> None:
    store, prefix = backend.store, backend.key("w/")
    start = store.current_revision()
    r1 = store.create(prefix + "a", b"1")
    r2 = store.update(prefix + "a", b"2", r1)
    store.create(backend.key("elsewhere"), b"x")  # outside the prefix: never delivered

    watch = store.watch(prefix, start)
    try:
        first, second = next_event(watch), next_event(watch)
        assert (first.type, first.kv.value, first.revision, first.prev) == ("PUT", b"1", r1, None)
        assert (second.type, second.kv.value, second.revision) == ("PUT", b"2", r2)
        assert second.prev is not None and second.prev.value == b"1" and second.prev.mod_revision == r1

        r3 = store.create(prefix + "b", b"3")
        live = next_event(watch)
        assert (live.kv.key, live.kv.value, live.revision, live.kv.create_revision) == (
            prefix + "b",
            b"3",
            r3,
            r3,
        )
        assert watch.next(0.05) is None
    finally:
        watch.cancel()


def test_watch_from_now_sees_only_new_events(backend: Backend) -> None:
    store, prefix = backend.store, backend.key("w/")
    store.create(prefix + "old", b"1")
    watch = store.watch(prefix, store.current_revision())
    try:
        rev = store.create(prefix + "new", b"2")
        event = next_event(watch)
        assert (event.kv.key, event.revision) == (prefix + "new", rev)
    finally:
        watch.cancel()


def test_watch_delete_carries_the_last_value(backend: Backend) -> None:
    store, key = backend.store, backend.key("w/a")
    created = store.create(key, b"one")
    updated = store.update(key, b"two", created)
    watch = store.watch(backend.key("w/"), updated)
    try:
        deleted = store.delete(key)
        event = next_event(watch)
        assert event.type == "DELETE"
        assert (event.kv.key, event.kv.value, event.kv.mod_revision, event.revision) == (
            key,
            b"two",
            deleted,
            deleted,
        )
        assert event.kv.create_revision == created
        assert event.prev is not None and (event.prev.value, event.prev.mod_revision) == (b"two", updated)
    finally:
        watch.cancel()


def test_watch_after_compaction_raises_compacted(backend: Backend) -> None:
    store, key = backend.store, backend.key("c/a")
    r1 = store.create(key, b"1")
    r2 = store.update(key, b"2", r1)
    r3 = store.update(key, b"3", r2)
    store.compact(r3)

    with pytest.raises(Compacted) as info:
        store.watch(backend.key("c/"), r1)
    assert info.value.requested == r1 + 1 and info.value.compacted >= r3

    # Everything from the compaction revision on is still there, and the state is intact.
    watch = store.watch(backend.key("c/"), r3 - 1)
    try:
        event = next_event(watch)
        assert (event.revision, event.kv.value) == (r3, b"3")
    finally:
        watch.cancel()
    assert store.get(key).value == b"3"  # type: ignore[union-attr]
    store.compact(r1)  # compacting to an older revision again is a no-op
    with pytest.raises(BadRequest, match="current revision"):
        store.compact(store.current_revision() + 100)


def test_cancel_ends_iteration(backend: Backend) -> None:
    store = backend.store
    watch = store.watch(backend.prefix, store.current_revision())
    seen: list[WatchEvent] = []
    done = threading.Event()

    def consume() -> None:
        seen.extend(watch)
        done.set()

    thread = threading.Thread(target=consume)
    thread.start()
    store.create(backend.key("x"), b"1")
    # The iterator ends once cancelled; the event before may or may not have arrived yet.
    watch.cancel()
    thread.join(WAIT)
    assert done.is_set()
    assert watch.next(0.01) is None
    assert all(e.kv.key == backend.key("x") for e in seen)


def test_concurrent_cas_increments_are_never_lost(backend: Backend) -> None:
    store, key = backend.store, backend.key("counter")
    store.create(key, b"0")
    threads, per_thread = 4, 15
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(per_thread):
                for _attempt in range(1000):
                    kv = store.get(key)
                    assert kv is not None
                    try:
                        store.update(key, str(int(kv.value) + 1).encode(), kv.mod_revision)
                        break
                    except RevisionMismatch:
                        continue
        except BaseException as err:  # surfaced in the main thread below
            errors.append(err)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    assert not errors
    assert store.get(key).value == str(threads * per_thread).encode()  # type: ignore[union-attr]


def test_value_over_the_limit_is_refused_and_nothing_written(backend: Backend) -> None:
    store, key = backend.store, backend.key("big")
    before = store.current_revision()
    with pytest.raises(TooLarge, match="exceeds"):
        store.create(key, b"x" * (MAX_VALUE_BYTES + 1))
    assert store.get(key) is None
    assert store.current_revision() == before

    rev = store.create(key, b"y" * (1024 * 1024))  # a 1 MiB object is fine
    with pytest.raises(TooLarge):
        store.update(key, b"x" * (MAX_VALUE_BYTES + 1), rev)
    assert store.get(key).mod_revision == rev  # type: ignore[union-attr]


def test_bad_key_or_value_is_a_bad_request(backend: Backend) -> None:
    with pytest.raises(BadRequest, match="key"):
        backend.store.create("", b"x")
    with pytest.raises(BadRequest, match="bytes"):
        backend.store.create(backend.key("a"), "not bytes")  # type: ignore[arg-type]


def test_write_batch_checks_each_items_precondition_on_its_own(backend: Backend) -> None:
    store = backend.store
    a, b, c, d = (backend.key(n) for n in "abcd")
    rev_a = store.create(a, b"a1")
    rev_b = store.create(b, b"b1")
    store.update(b, b"b2", rev_b)  # b moves on: a write expecting rev_b is stale
    results = store.write_batch(
        [
            BatchWrite(a, b"a2", rev_a),  # CAS holds
            BatchWrite(b, b"b3", rev_b),  # stale
            BatchWrite(c, b"c1"),  # a create
            BatchWrite(a + "x", b"?", 1),  # an update of a key that does not exist
            BatchWrite(d, b"d1"),
        ]
    )
    assert isinstance(results[0], int) and results[0] > rev_a
    assert isinstance(results[1], RevisionMismatch) and results[1].expected == rev_b
    assert isinstance(results[2], int) and isinstance(results[4], int)
    assert isinstance(results[3], KeyNotFound)
    assert store.get(a).value == b"a2" and store.get(a).mod_revision == results[0]  # type: ignore[union-attr]
    assert store.get(b).value == b"b2"  # type: ignore[union-attr]
    assert store.get(c).value == b"c1" and store.get(d).value == b"d1"  # type: ignore[union-attr]
    again = store.write_batch([BatchWrite(c, b"c2")])
    assert isinstance(again[0], KeyExists)
    with pytest.raises(BadRequest, match="twice"):
        store.write_batch([BatchWrite(a, b"x", results[0]), BatchWrite(a, b"y", results[0])])  # type: ignore[arg-type]


def test_write_batch_of_more_than_one_transaction_writes_every_item(backend: Backend) -> None:
    keys = [backend.key(f"k{i:04d}") for i in range(MAX_BATCH + 5)]
    results = backend.store.write_batch([BatchWrite(k, b"v") for k in keys])
    assert all(isinstance(r, int) for r in results)
    items, _rev = backend.store.list(backend.prefix)
    assert [kv.key for kv in items] == keys


def test_a_watch_delivers_every_item_of_a_write_batch(backend: Backend) -> None:
    # etcd gives all puts of one txn the same revision: a watch must not take the second event of
    # a revision for a replay of the first (the lost-pod bug of batched pod creates)
    store, prefix = backend.store, backend.key("wb/")
    watch = store.watch(prefix, store.current_revision())
    try:
        keys = [prefix + n for n in ("a", "b", "c")]
        results = store.write_batch([BatchWrite(k, b"v") for k in keys])
        seen = [next_event(watch) for _ in keys]
        assert [e.kv.key for e in seen] == keys
        assert [e.revision for e in seen] == results
        assert watch.next(0.05) is None
        # a watch started from the revision before the batch replays all of it; after it, nothing
        for after, expected in ((int(results[0]) - 1, keys), (int(results[-1]), [])):
            replay = store.watch(prefix, after)
            try:
                assert [next_event(replay).kv.key for _ in expected] == expected
                assert replay.next(0.05) is None
            finally:
                replay.cancel()
    finally:
        watch.cancel()


def test_list_a_page_from_a_start_key_skips_deleted_keys_and_counts_the_rest(backend: Backend) -> None:
    store = backend.store
    keys = [backend.key(f"k{i:02d}") for i in range(10)]
    revs = {k: store.create(k, k.encode()) for k in keys}
    for k in keys[2:5]:
        store.delete(k)  # tombstones inside the first page's range
    snapshot = store.current_revision()
    page, rev = store.list(backend.prefix, limit=3)
    assert [kv.key for kv in page] == [keys[0], keys[1], keys[5]] and rev == snapshot
    store.update(keys[6], b"later", revs[keys[6]])  # after the snapshot
    nxt, rev2 = store.list(backend.prefix, revision=snapshot, start=keys[5] + "\x00", limit=3)
    assert [kv.key for kv in nxt] == keys[6:9] and rev2 == snapshot
    assert nxt[0].value == keys[6].encode()  # as it was at the snapshot
    assert store.count(backend.prefix, revision=snapshot, start=keys[5] + "\x00") == 4
    assert store.count(backend.prefix) == 7
    everything, _ = store.list(backend.prefix, start=keys[8])
    assert [kv.key for kv in everything] == keys[8:]
