"""Updates that name the revision this registry wrote last skip the store read, and still fail as
a read would have made them fail: Conflict when another writer got there first, NotFound when the
object is gone. Two registries over one store stand for two processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nbkube.errors import Conflict, NotFound
from nbkube.registry.recent import RecentValues
from nbkube.registry.registry import Registry
from nbkube.security.encryption import ensure_config, transformers_for
from nbkube.store import open_store


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


@pytest.fixture
def two(tmp_path: Path) -> Any:
    store = open_store(f"sqlite://{tmp_path / 'store.db'}")
    a, b = Registry(store), Registry(store)
    yield a, b
    a.close()
    b.close()


def _reads(api: Registry) -> list[str]:
    seen: list[str] = []
    real = api.store.get

    def counting(key: str) -> Any:
        seen.append(key)
        return real(key)

    api.store.get = counting  # type: ignore[method-assign]
    return seen


def test_an_update_of_what_this_registry_wrote_does_not_read_the_store(two: Any) -> None:
    a, _b = two
    pod = a.create(_pod("p"))
    reads = _reads(a)
    bound = a.update({**pod, "spec": {**pod["spec"], "nodeName": "n1"}})
    status = a.update_status({**bound, "status": {"phase": "Running"}})
    assert reads == []
    assert a.get("Pod", "p", "default") == status
    reads.clear()  # that get was a read, as it should be
    assert status["spec"]["nodeName"] == "n1" and status["status"]["phase"] == "Running"
    [batch] = a.update_many([{**status, "status": {"phase": "Succeeded"}}], status=True)
    assert isinstance(batch, dict) and reads == []
    created = a.create_many([_pod("q")])[0]
    assert isinstance(created, dict)
    a.update_status({**created, "status": {"phase": "Pending"}})
    assert reads == []


def test_a_revision_another_writer_moved_past_is_a_conflict(two: Any) -> None:
    a, b = two
    pod = a.create(_pod("p"))
    b.update_status({**b.get("Pod", "p", "default"), "status": {"phase": "Running"}})  # "another process"
    with pytest.raises(Conflict):
        a.update_status({**pod, "status": {"phase": "Failed"}})
    [result] = a.update_many([{**pod, "spec": {**pod["spec"], "nodeName": "n1"}}])
    assert isinstance(result, Conflict)
    assert b.get("Pod", "p", "default")["status"]["phase"] == "Running"


def test_an_object_deleted_elsewhere_is_not_found(two: Any) -> None:
    a, b = two
    pod = a.create(_pod("p"))
    b.delete("Pod", "p", "default")
    with pytest.raises(NotFound):
        a.update_status({**pod, "status": {"phase": "Running"}})


def test_encrypted_values_are_never_kept(tmp_path: Path) -> None:
    api = Registry(
        open_store(f"sqlite://{tmp_path / 'store.db'}"),
        transformers=transformers_for(ensure_config(str(tmp_path / "keys"))),
    )
    try:
        secret = api.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "s", "namespace": "default"},
                "stringData": {"k": "v"},
            }
        )
        cm = api.create(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}}
        )
        assert (
            api._recent.at("/registry/secrets/default/s", int(secret["metadata"]["resourceVersion"])) is None
        )
        assert (
            api._recent.at("/registry/configmaps/default/c", int(cm["metadata"]["resourceVersion"]))
            is not None
        )
    finally:
        api.close()


def test_recent_values_are_bounded_and_keyed_by_revision() -> None:
    recent = RecentValues(capacity=2)
    recent.remember("/a", b"{}", 1, 1)
    recent.remember("/b", b"{}", 2, 2)
    recent.remember("/a", b'{"x":1}', 1, 3)
    recent.remember("/c", b"{}", 4, 4)  # /b, the least recently written, goes
    assert recent.at("/b", 2) is None
    assert recent.at("/a", 1) is None  # superseded by revision 3
    kv = recent.at("/a", 3)
    assert kv is not None and kv.value == b'{"x":1}' and kv.create_revision == 1
    recent.remember("/d", b"k8s:enc:aesgcm:v1:key1:...", 5, 5)
    assert recent.at("/d", 5) is None


def test_an_update_of_what_a_watch_delivered_from_another_writer_does_not_read_the_store(two: Any) -> None:
    """The scheduler binds what another process created; the node writes the status of what
    another process bound: the value comes from the writer's own watch."""
    a, b = two
    watch = b.watch("Pod", "default")
    a.create(_pod("p"))
    event = watch.next(5)
    assert event is not None and event.type == "ADDED"
    reads = _reads(b)
    pod = event.object
    bound = b.update({**pod, "spec": {**pod["spec"], "nodeName": "n1"}})
    assert reads == [] and bound["spec"]["nodeName"] == "n1"
    # a's next write names a's own (older) revision: a Conflict, as after a read
    with pytest.raises(Conflict):
        a.update({**pod, "metadata": {**pod["metadata"], "labels": {"x": "y"}}})
    watch.cancel()


def test_a_watched_value_never_replaces_a_newer_one() -> None:
    from nbkube.store.base import KeyValue

    recent = RecentValues()
    recent.remember("/a", b'{"v":2}', 1, 2)
    recent.remember_seen(KeyValue("/a", b'{"v":1}', 1, 1))  # a late echo of an older write
    assert recent.at("/a", 2) is not None and recent.at("/a", 1) is None
    recent.remember_seen(KeyValue("/a", b'{"v":3}', 1, 3))
    assert recent.at("/a", 3) is not None
    recent.remember_seen(KeyValue("/b", b"k8s:enc:aesgcm:v1:key1:...", 4, 4))
    assert recent.at("/b", 4) is None


def test_a_watched_value_no_newer_than_one_let_go_is_not_kept() -> None:
    """A watch that fell behind delivers values kept and let go long ago: keeping them again would
    push out what writers are about to name."""
    from nbkube.store.base import KeyValue

    recent = RecentValues(capacity=2)
    recent.remember("/a", b"{}", 1, 1)
    recent.remember("/b", b"{}", 2, 2)
    recent.remember("/c", b"{}", 3, 3)  # /a (revision 1) goes
    recent.remember_seen(KeyValue("/a", b"{}", 1, 1))  # the lagging watch's echo of it
    assert recent.at("/a", 1) is None
    assert recent.at("/b", 2) is not None and recent.at("/c", 3) is not None  # nothing pushed out
    recent.remember_seen(KeyValue("/x", b"{}", 4, 4))  # another writer's newer value is kept
    assert recent.at("/x", 4) is not None and recent.at("/b", 2) is None


def test_threads_racing_never_get_a_wrong_value_nor_an_error() -> None:
    """No lock: writers, watch threads and deletes race on a small capacity (evictions all the
    time). A race may lose a value, but what is found under (key, revision) is that revision's."""
    import sys
    import threading

    from nbkube.store.base import KeyValue

    recent = RecentValues(capacity=8)
    errors: list[BaseException] = []

    def value(key: str, rev: int) -> bytes:
        return b'{"k":"%s","r":%d}' % (key.encode(), rev)

    def work(seed: int) -> None:
        try:
            for i in range(4000):
                key = f"/k{(i * 7 + seed) % 16}"
                rev = seed * 100_000 + i + 1
                if i % 3 == 0:
                    recent.remember_seen(KeyValue(key, value(key, rev), 1, rev))
                else:
                    recent.remember(key, value(key, rev), 1, rev)
                if i % 11 == 0:
                    recent.forget(key)
                kv = recent.at(key, rev)
                assert kv is None or (kv.mod_revision == rev and kv.value == value(key, rev))
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(1, 7)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can: more races
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert len(recent) <= 8 + len(threads)  # each racing thread may overshoot by its own insert
