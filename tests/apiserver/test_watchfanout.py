"""Watch fan-out: shared decoding and encoding never mixes up what each watcher is owed."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest
from nbk_apitest import connect, pod

from nbkube.api.selectors import parse_selector
from nbkube.apiserver import ApiServer, watchfanout
from nbkube.apiserver.protobuf import encode_watch_event
from nbkube.apiserver.watchfanout import FrameCache
from nbkube.apiserver.watchstream import Outgoing
from nbkube.errors import Expired
from nbkube.registry.registry import Registry, RegistryWatch, SharedDecoder
from nbkube.store._watch import QueueWatch
from nbkube.store.base import Compacted, KeyValue, WatchEvent

PROTOBUF_WATCH = "application/vnd.kubernetes.protobuf;stream=watch"


def _open(
    server: ApiServer, query: str, accept: str = "application/json", timeout: int = 2
) -> tuple[Any, Any]:
    conn = connect(server)
    path = f"/api/v1/namespaces/default/pods?watch=1&timeoutSeconds={timeout}&{query}"
    conn.request("GET", path, headers={"Accept": accept})
    resp = conn.getresponse()  # the headers are out: the watch is open
    assert resp.status == 200
    return conn, resp


def _json_events(resp: http.client.HTTPResponse) -> list[dict[str, Any]]:
    return [json.loads(line) for line in resp.read().splitlines() if line]


def _seen(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"]["name"]) for e in events]


def test_watchers_with_different_selectors_and_encodings_get_exactly_their_events(
    server: ApiServer, registry: Registry
) -> None:
    _, rv = registry.list("Pod")
    since = f"resourceVersion={rv}"
    opened = {
        "all": _open(server, since),
        "proto": _open(server, since, PROTOBUF_WATCH),
        "labels": _open(server, f"{since}&labelSelector=app%3Dweb"),
        "fields": _open(server, f"{since}&fieldSelector=status.phase%3DRunning"),
    }
    registry.create(pod("a", app="web"))
    registry.create(pod("b", app="db"))
    registry.patch("Pod", "a", "default", {"status": {"phase": "Running"}}, status=True)
    registry.patch("Pod", "b", "default", {"metadata": {"labels": {"app": "web"}}})
    registry.patch("Pod", "a", "default", {"metadata": {"labels": {"app": "db"}}})
    registry.patch("Pod", "a", "default", {"status": {"phase": "Failed"}}, status=True)
    registry.delete("Pod", "b", "default")
    everything = _json_events(opened["all"][1])
    proto = opened["proto"][1].read()
    labels = _json_events(opened["labels"][1])
    fields = _json_events(opened["fields"][1])
    for conn, _ in opened.values():
        conn.close()

    assert _seen(everything) == [
        ("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("MODIFIED", "b"),
        ("MODIFIED", "a"), ("MODIFIED", "a"), ("DELETED", "b"),
    ]  # fmt: skip
    # the protobuf watcher shares the changes, never the JSON watcher's bytes
    assert proto == b"".join(encode_watch_event(e) for e in everything)
    assert _seen(labels) == [
        ("ADDED", "a"),
        ("MODIFIED", "a"),
        ("ADDED", "b"),
        ("DELETED", "a"),
        ("DELETED", "b"),
    ]
    leaving = labels[3]["object"]
    assert leaving["metadata"]["labels"] == {"app": "web"}  # the version that matched
    assert leaving["metadata"]["resourceVersion"] == everything[4]["object"]["metadata"]["resourceVersion"]
    assert _seen(fields) == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert fields[2]["object"]["status"]["phase"] == "Running"
    # the unfiltered watchers' objects are the very versions the filtered ones saw
    assert labels[1] == everything[2] and fields[0]["object"] == everything[2]["object"]


def test_a_client_slower_than_its_events_gets_them_all_in_order(
    server: ApiServer, registry: Registry, monkeypatch: Any
) -> None:
    # every write leaves the watch waiting for its transport to drain before the next one
    monkeypatch.setattr(watchfanout, "HIGH_WATER", 0)
    _, rv = registry.list("Pod")
    conn, resp = _open(server, f"resourceVersion={rv}")
    for i in range(40):
        registry.create(pod(f"p{i}"))
    events = _json_events(resp)
    conn.close()
    assert _seen(events) == [("ADDED", f"p{i}") for i in range(40)]


def test_initial_list_longer_than_a_batch_then_changes(server: ApiServer, registry: Registry) -> None:
    for i in range(20):
        registry.create(pod(f"p{i}"))
    conn, resp = _open(server, "")
    events = [json.loads(resp.readline())]  # the list is taken and the watch open
    registry.delete("Pod", "p0", "default")
    events += _json_events(resp)
    conn.close()
    names = sorted(f"p{i}" for i in range(20))
    assert _seen(events) == [("ADDED", n) for n in names] + [("DELETED", "p0")]


def test_frame_cache_shares_bytes_per_object_type_and_encoding() -> None:
    cache = FrameCache(size=2)
    obj = pod("a")
    added = Outgoing({"type": "ADDED", "object": obj}, True)
    first = cache.frame(added, False, None)
    # another watcher's event dict around the same shared object: the same bytes
    assert cache.frame(Outgoing({"type": "ADDED", "object": obj}, True), False, None) is first
    assert json.loads(first) == {"type": "ADDED", "object": obj}
    assert cache.frame(Outgoing({"type": "DELETED", "object": obj}, True), False, None) != first
    assert cache.frame(added, True, None) == encode_watch_event(added.event)
    # an object that is not shared is encoded for its watcher alone
    table = Outgoing({"type": "ADDED", "object": {"kind": "Table", "rows": []}}, False)
    assert cache.frame(table, False, None) == b'{"type":"ADDED","object":{"kind":"Table","rows":[]}}\n'
    # an equal but distinct object is not taken for the cached one
    assert cache.frame(Outgoing({"type": "ADDED", "object": pod("b")}, True), False, None) != first


def test_shared_decoder_decodes_each_version_once() -> None:
    calls: list[KeyValue] = []

    def decode(kv: KeyValue) -> dict[str, Any]:
        calls.append(kv)
        return json.loads(kv.value)

    shared = SharedDecoder(decode, size=2)
    kv = KeyValue("/registry/pods/default/a", b'{"a":1}', 5, 7)
    one = shared(kv)
    assert shared(KeyValue(kv.key, bytes(kv.value), 5, 7)) is one and len(calls) == 1
    # the same key and revision with other bytes (a restored store) is decoded afresh
    assert shared(KeyValue(kv.key, b'{"a":2}', 5, 7)) == {"a": 2} and len(calls) == 2
    for rev in (8, 9):
        shared(KeyValue(kv.key, b"{}", 5, rev))
    assert shared(KeyValue(kv.key, b'{"a":2}', 5, 7)) == {"a": 2} and len(calls) == 5  # evicted


def _copy(kv: KeyValue) -> KeyValue:
    return KeyValue(kv.key, bytes(kv.value), kv.create_revision, kv.mod_revision)


def test_an_event_carries_its_decoding_past_the_table_bounds() -> None:
    """A watch far behind the others (more versions than the table keeps) still gets the object
    they got, from the event the store handed to all of them, and is not a copy to hold apart."""
    calls: list[KeyValue] = []

    def decode(kv: KeyValue) -> dict[str, Any]:
        calls.append(kv)
        return json.loads(kv.value)

    shared = SharedDecoder(decode, size=2)
    events = [KeyValue(f"/registry/pods/default/p{i}", b'{"n":%d}' % i, i, i) for i in range(1, 6)]
    first = [shared(kv) for kv in events]  # the leading watch: the table keeps the last two only
    assert [shared(kv) for kv in events] == first and len(calls) == 5  # the lagging one: no decode
    assert all(a is b for a, b in zip(first, (shared(kv) for kv in events), strict=True))
    # another registry's decoder (its own keys) never takes this one's decoding
    other_calls: list[KeyValue] = []
    other = SharedDecoder(lambda kv: other_calls.append(kv) or {"other": True})
    assert other(events[0]) == {"other": True} and len(other_calls) == 1


def test_only_shared_watches_share_objects(registry: Registry) -> None:
    mine = registry.watch("Pod", "default")
    theirs = [registry.watch("Pod", "default", shared=True) for _ in range(2)]
    try:
        registry.create(pod("a"))
        first, second = (w.next(timeout=5) for w in theirs)
        own = mine.next(timeout=5)
        assert first is not None and second is not None and own is not None
        assert first.object is second.object
        assert own.object == first.object and own.object is not first.object  # its own to mutate
    finally:
        for w in (mine, *theirs):
            w.cancel()


def _kv(name: str, rev: int, **labels: str) -> KeyValue:
    return KeyValue(f"/registry/pods/default/{name}", json.dumps(pod(name, **labels)).encode(), rev, rev)


def test_ready_does_not_let_a_filtered_event_hide_the_next() -> None:
    store = QueueWatch("/registry/pods/", 0)
    w = RegistryWatch(store, parse_selector("app=web"))
    store.push(WatchEvent("PUT", _kv("other", 1, app="db")))
    store.push(WatchEvent("PUT", _kv("mine", 2, app="web")))
    assert [(e.type, e.object["metadata"]["name"]) for e in w.ready(10)] == [("ADDED", "mine")]
    assert w.resource_version == "2" and w.ready(10) == []


def test_ready_delivers_the_events_before_an_expiry() -> None:
    store = QueueWatch("/registry/pods/", 0)
    w = RegistryWatch(store, None)
    store.push(WatchEvent("PUT", _kv("a", 1)))
    store.fail(Compacted(2, 5))
    assert [e.object["metadata"]["name"] for e in w.ready(10)] == ["a"]
    with pytest.raises(Expired):
        w.ready(10)


def test_frame_cache_keeps_served_versions_apart() -> None:
    from nbkube.apiserver.conversion import converted_for
    from nbkube.apiserver.watchfanout import encode_frame

    conv = converted_for("autoscaling/v1", "horizontalpodautoscalers")
    assert conv is not None
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 4,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}},
                }
            ],
        },
    }
    cache = FrameCache()
    item = Outgoing({"type": "MODIFIED", "object": hpa}, True)
    stored = cache.frame(item, False, None)
    served = cache.frame(item, False, conv)
    assert json.loads(stored)["object"]["apiVersion"] == "autoscaling/v2"
    v1 = json.loads(served)["object"]
    assert v1["apiVersion"] == "autoscaling/v1" and v1["spec"]["targetCPUUtilizationPercentage"] == 60
    assert cache.frame(item, False, conv) is served and served == encode_frame(item.event, False, conv)
    assert hpa["apiVersion"] == "autoscaling/v2"  # the shared object is left as it was


def test_quiet_watches_get_bookmarks_and_end_at_their_timeout(
    server: ApiServer, registry: Registry, monkeypatch: Any
) -> None:
    from nbkube.apiserver import watchstream

    monkeypatch.setattr(watchstream, "BOOKMARK_SECONDS", 0.0)
    registry.create(pod("a"))
    quiet = _open(server, "allowWatchBookmarks=true", timeout=1)
    plain = _open(server, "", timeout=1)
    marked, unmarked = _json_events(quiet[1]), _json_events(plain[1])  # both end by themselves
    for conn, _ in (quiet, plain):
        conn.close()
    assert marked[0]["type"] == "ADDED" and len(marked) > 1
    assert {e["type"] for e in marked[1:]} == {"BOOKMARK"}
    assert (
        marked[1]["object"]["metadata"]["resourceVersion"]
        == marked[0]["object"]["metadata"]["resourceVersion"]
    )
    assert _seen(unmarked) == [("ADDED", "a")]


def test_caches_are_bounded_by_bytes_too() -> None:
    calls: list[KeyValue] = []

    def decode(kv: KeyValue) -> dict[str, Any]:
        calls.append(kv)
        return json.loads(kv.value)

    shared = SharedDecoder(decode, max_bytes=24)
    kvs = [KeyValue(f"/registry/pods/default/p{i}", b'{"n":"%d"}' % i + b" " * 3, 1, i) for i in range(3)]
    for kv in kvs:  # 12 bytes each: the third pushes the first out
        shared(kv)
    # copies, as each watch of an etcd store gets its own events (the same event carries its
    # decoding: test_an_event_carries_its_decoding_past_the_table_bounds)
    shared(_copy(kvs[1]))
    shared(_copy(kvs[0]))
    assert len(calls) == 4  # the second was kept, the first decoded again
    big = KeyValue("/registry/pods/default/big", b'{"n":"' + b"x" * 40 + b'"}', 1, 9)
    assert shared(big) is not shared(_copy(big))  # larger than the whole budget: never kept

    cache = FrameCache(max_bytes=200)
    objs = [pod(f"p{i}") for i in range(3)]
    frames = [cache.frame(Outgoing({"type": "ADDED", "object": o}, True), False, None) for o in objs]
    assert all(len(f) > 67 for f in frames)  # so the three cannot all be kept within 200 bytes
    assert cache.frame(Outgoing({"type": "ADDED", "object": objs[2]}, True), False, None) is frames[2]
    assert cache.frame(Outgoing({"type": "ADDED", "object": objs[0]}, True), False, None) is not frames[0]
