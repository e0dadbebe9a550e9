"""Informer: initial sync, ordered handlers, synthetic adds, indexes, relist after compaction,
the shared factory, and a prompt stop."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nbkube.api.meta import Obj
from nbkube.client.informer import Informer, InformerFactory
from nbkube.registry.registry import Registry


def pod(name: str, ns: str = "default", labels: dict[str, str] | None = None, node: str = "") -> Obj:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": spec,
    }


class Recorder:
    """Collects handler calls; `expect(n)` waits (on a queue, not a sleep) for n more calls."""

    def __init__(self) -> None:
        self.q: queue.Queue[tuple[str, str]] = queue.Queue()
        self.threads: set[str] = set()

    def _put(self, what: str, obj: Obj) -> None:
        self.threads.add(threading.current_thread().name)
        self.q.put((what, obj["metadata"]["name"]))

    def handlers(self) -> dict[str, Callable[..., None]]:
        return {
            "on_add": lambda o: self._put("add", o),
            "on_update": lambda old, new: self._put("update", new),
            "on_delete": lambda o: self._put("delete", o),
        }

    def expect(self, n: int) -> list[tuple[str, str]]:
        return [self.q.get(timeout=5) for _ in range(n)]

    def quiet(self) -> bool:
        return self.q.empty()


def started(inf: Informer) -> Recorder:
    """`inf` with a Recorder on its handlers, started and synced."""
    rec = Recorder()
    inf.add_handler(**rec.handlers())
    inf.start()
    assert inf.wait_synced(5)
    return rec


@pytest.fixture
def make_informer(api: Registry) -> Iterator[Callable[..., Informer]]:
    made: list[Informer] = []

    def make(kind: str = "Pod", **kw: Any) -> Informer:
        inf = Informer(api, kind, **kw)
        made.append(inf)
        return inf

    yield make
    for inf in made:
        inf.stop()


def test_sync_handlers_and_cache(api: Registry, make_informer: Callable[..., Informer]) -> None:
    api.create(pod("a", labels={"app": "web"}))
    inf = make_informer()
    rec = started(inf)
    assert inf.has_synced
    assert rec.expect(1) == [("add", "a")]
    assert inf.get("default/a") is not None
    api.create(pod("b"))
    api.patch("Pod", "a", "default", {"metadata": {"labels": {"app": "api"}}})
    api.delete("Pod", "b", "default")
    assert rec.expect(3) == [("add", "b"), ("update", "a"), ("delete", "b")]
    assert rec.threads == {"informer-pods"}
    assert sorted(inf.keys()) == ["default/a"]
    assert inf.get("default/a")["metadata"]["labels"] == {"app": "api"}  # type: ignore[index]
    assert [o["metadata"]["name"] for o in inf.list()] == ["a"]


def test_late_handler_gets_synthetic_adds(api: Registry, make_informer: Callable[..., Informer]) -> None:
    api.create(pod("a"))
    api.create(pod("b"))
    inf = make_informer()
    inf.start()
    assert inf.wait_synced(5)
    rec = Recorder()
    inf.add_handler(**rec.handlers())
    assert sorted(rec.expect(2)) == [("add", "a"), ("add", "b")]
    api.create(pod("c"))
    assert rec.expect(1) == [("add", "c")]


def test_indexes(api: Registry, make_informer: Callable[..., Informer]) -> None:
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    api.create(pod("a", labels={"app": "web"}, node="n1"))
    api.create(pod("b", labels={"app": "web"}, node="n2"))
    api.create(pod("c", ns="team", labels={"app": "db"}, node="n1"))
    inf = make_informer(indexers={"image": lambda o: [c["image"] for c in o["spec"]["containers"]]})
    rec = started(inf)
    rec.expect(3)
    names = lambda objs: sorted(o["metadata"]["name"] for o in objs)  # noqa: E731
    assert names(inf.by_index("nodeName", "n1")) == ["a", "c"]
    assert names(inf.by_index("namespace", "team")) == ["c"]
    assert names(inf.by_index("label", "app=web")) == ["a", "b"]
    assert names(inf.by_index("image", "busybox")) == ["a", "b", "c"]
    api.patch("Pod", "a", "default", {"metadata": {"labels": {"app": "db"}}})
    api.delete("Pod", "c", "team")
    rec.expect(2)
    assert names(inf.by_index("label", "app=web")) == ["b"]
    assert names(inf.by_index("label", "app=db")) == ["a"]
    assert names(inf.by_index("nodeName", "n1")) == ["a"]
    assert inf.by_index("namespace", "team") == []
    # a write that moves no index entry (status only) keeps the pod under every entry it had
    b = api.get("Pod", "b", "default")
    api.update_status({**b, "status": {"phase": "Running"}})
    rec.expect(1)
    assert inf.get("default/b")["status"]["phase"] == "Running"  # type: ignore[index]
    assert names(inf.by_index("label", "app=web")) == ["b"]
    assert names(inf.by_index("nodeName", "n2")) == ["b"]
    assert names(inf.by_index("image", "busybox")) == ["a", "b"]
    with pytest.raises(KeyError, match="no index"):
        inf.by_index("nope", "x")


def test_a_builtin_index_is_built_at_its_first_use_and_kept_from_then_on(
    api: Registry, make_informer: Callable[..., Informer]
) -> None:
    api.create(pod("a", labels={"app": "web"}, node="n1"))
    inf = make_informer()
    rec = started(inf)
    rec.expect(1)
    api.create(pod("b", labels={"app": "web"}, node="n2"))
    api.patch("Pod", "a", "default", {"metadata": {"labels": {"app": "db"}}})
    rec.expect(2)
    assert "label" not in inf._index  # nobody asked: no change so far computed its label entries
    names = lambda objs: sorted(o["metadata"]["name"] for o in objs)  # noqa: E731
    assert names(inf.by_index("label", "app=web")) == ["b"]
    assert names(inf.by_index("label", "app=db")) == ["a"]
    api.patch("Pod", "b", "default", {"metadata": {"labels": {"app": "db"}}})
    api.delete("Pod", "a", "default")
    rec.expect(2)
    assert inf.by_index("label", "app=web") == []
    assert names(inf.by_index("label", "app=db")) == ["b"]
    assert names(inf.by_index("nodeName", "n2")) == ["b"]


def test_controller_and_orphan_indexes(api: Registry, make_informer: Callable[..., Informer]) -> None:
    ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": True}
    owned = pod("owned")
    owned["metadata"]["ownerReferences"] = [ref]
    api.create(owned)
    api.create(pod("orphan"))
    inf = make_informer()
    rec = started(inf)
    rec.expect(2)
    names = lambda objs: sorted(o["metadata"]["name"] for o in objs)  # noqa: E731
    assert names(inf.by_index("controller", "u1")) == ["owned"]
    assert names(inf.by_index("orphan", "default")) == ["orphan"]
    # a release moves the pod from its owner's entry to the orphans
    api.patch("Pod", "owned", "default", {"metadata": {"ownerReferences": None}})
    rec.expect(1)
    assert inf.by_index("controller", "u1") == []
    assert names(inf.by_index("orphan", "default")) == ["orphan", "owned"]


def test_namespace_and_selector_scoped_informer(
    api: Registry, make_informer: Callable[..., Informer]
) -> None:
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    inf = make_informer(namespace="team", label_selector="app=web")
    rec = started(inf)
    api.create(pod("x", labels={"app": "web"}))  # other namespace
    api.create(pod("y", ns="team", labels={"app": "db"}))  # no match
    api.create(pod("z", ns="team", labels={"app": "web"}))
    assert rec.expect(1) == [("add", "z")]
    api.patch("Pod", "z", "team", {"metadata": {"labels": {"app": "db"}}})
    assert rec.expect(1) == [("delete", "z")]
    assert inf.keys() == []


def test_relist_after_compaction_emits_the_diff(
    api: Registry, make_informer: Callable[..., Informer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nbkube.client.informer")
    api.create(pod("keep"))
    api.create(pod("change"))
    api.create(pod("remove"))
    inf = make_informer()
    rec = started(inf)
    rec.expect(3)
    # Stop the informer, change things behind its back and compact the history away: restarted, it
    # resumes its watch from the old resourceVersion, gets Expired and must relist.
    rv_before = inf.resource_version
    inf.stop()
    api.patch("Pod", "change", "default", {"metadata": {"labels": {"v": "2"}}})
    api.delete("Pod", "remove", "default")
    api.create(pod("new"))
    api.store.compact(api.store.current_revision())
    assert inf.resource_version == rv_before
    inf.start()
    got = sorted(rec.expect(3))
    assert got == [("add", "new"), ("delete", "remove"), ("update", "change")]
    assert sorted(inf.keys()) == ["default/change", "default/keep", "default/new"]
    assert "watch expired" in caplog.text
    api.create(pod("after"))
    assert rec.expect(1) == [("add", "after")]
    assert rec.quiet()


class _FlakyRegistry(Registry):
    """Fails the first `failures` list calls, as an unreachable store would."""

    def __init__(self, inner: Registry, failures: int) -> None:
        super().__init__(inner.store, clock=inner.clock)
        self.failures = failures

    def list(self, *a: Any, **kw: Any) -> Any:
        if self.failures > 0:
            self.failures -= 1
            from nbkube.errors import StoreUnavailable

            raise StoreUnavailable("store down (test)")
        return super().list(*a, **kw)


def test_retries_after_errors(api: Registry) -> None:
    api.create(pod("a"))
    inf = Informer(_FlakyRegistry(api, failures=2), "Pod")
    try:
        inf.start()
        assert inf.wait_synced(5)
        assert inf.keys() == ["default/a"]
    finally:
        inf.stop()


def test_stop_joins_thread_promptly(api: Registry) -> None:
    inf = Informer(api, "Pod")
    inf.start()
    assert inf.wait_synced(5)
    t = inf._thread
    assert t is not None
    inf.stop()
    assert not t.is_alive()


def test_factory_shares_informers(api: Registry) -> None:
    factory = InformerFactory(api)
    try:
        a = factory.informer("pods")
        assert factory.informer("Pod") is a
        assert factory.informer("po", "default") is not a
        assert factory.informer("Node", "ignored") is factory.informer("no")
        api.create(pod("p"))
        factory.start_all()
        assert factory.wait_all_synced(5)
        late = factory.informer("ConfigMap")  # started because the factory already runs
        assert late.wait_synced(5)
        assert a.keys() == ["default/p"]
    finally:
        factory.stop_all()


def test_reconnects_when_its_watch_is_cancelled(
    api: Registry, make_informer: Callable[..., Informer]
) -> None:
    inf = make_informer()
    rec = started(inf)
    pause = threading.Event()
    for _ in range(500):  # the watch is opened just after the initial list
        if inf._watch is not None:
            break
        pause.wait(0.01)
    w = inf._watch
    assert w is not None
    w.cancel()  # what Registry.close() or a dropped connection does to it
    api.create(pod("after-cancel"))
    assert rec.expect(1) == [("add", "after-cancel")]
    assert inf._watch is not w


class _WatchThatBreaksAfterOneEvent:
    """A watch that ends after its first event, as a dropped connection can end one between two
    events of a single revision."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.delivered = 0
        self.cancelled = False

    def next(self, timeout: float | None = None) -> Any:
        if self.delivered == 1:
            self.cancelled = True
            return None
        ev = self._inner.next(timeout)
        if ev is not None:
            self.delivered += 1
        return ev

    def cancel(self) -> None:
        self.cancelled = True
        self._inner.cancel()


class _BreakingRegistry(Registry):
    """Its first watch opened after `arm()` breaks after one event."""

    def __init__(self, inner: Registry) -> None:
        super().__init__(inner.store, clock=inner.clock)
        self.armed = False

    def watch(self, *a: Any, **kw: Any) -> Any:
        w = super().watch(*a, **kw)
        if self.armed:
            self.armed = False
            return _WatchThatBreaksAfterOneEvent(w)
        return w


@pytest.mark.etcd
def test_a_watch_broken_inside_one_revision_loses_none_of_its_events(etcd_url: str) -> None:
    # etcd writes a create_many batch in one txn: three pods, one revision. The informer's watch
    # breaks after the first; resuming from that event's resourceVersion alone would skip the rest.
    import uuid

    from nbkube.store import open_store

    inner = Registry(open_store(etcd_url))
    api = _BreakingRegistry(inner)
    ns = "inf-" + uuid.uuid4().hex[:8]
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    inf = Informer(api, "Pod", namespace=ns)
    rec = Recorder()
    inf.add_handler(**rec.handlers())
    try:
        inf.start()
        assert inf.wait_synced(5)
        for _ in range(500):  # the first watch is opened just after the initial list
            if inf._watch is not None:
                break
            threading.Event().wait(0.01)
        first = inf._watch
        assert first is not None
        api.armed = True
        first.cancel()  # the informer reconnects, and its next watch is the one that breaks
        results = api.create_many([pod(n, ns) for n in ("a", "b", "c")])
        assert len({r["metadata"]["resourceVersion"] for r in results}) == 1  # type: ignore[index]
        assert sorted(rec.expect(3)) == [("add", "a"), ("add", "b"), ("add", "c")]
        assert sorted(inf.keys()) == [f"{ns}/a", f"{ns}/b", f"{ns}/c"]
        assert rec.quiet()
    finally:
        inf.stop()
        api.close()
        inner.close()
