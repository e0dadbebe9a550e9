"""Watch framing: chunked newline-delimited events, initial ADDED, filters, timeouts, 410 Expired."""

from __future__ import annotations

import json
from typing import Any

from nbk_apitest import connect, pod

from nbkube.api.kinds import lookup
from nbkube.apiserver import ApiServer
from nbkube.apiserver.resources import Request
from nbkube.apiserver.routing import Route
from nbkube.apiserver.watchstream import watch_events
from nbkube.registry.registry import Registry


def _stream(server: ApiServer, path: str, count: int) -> list[dict[str, Any]]:
    """Read up to `count` events from a watch (the server ends it at timeoutSeconds anyway)."""
    conn = connect(server)
    conn.request("GET", path)
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
    events = []
    for _ in range(count):
        line = resp.readline()  # http.client de-chunks; each event ends with a newline
        if not line:
            break
        events.append(json.loads(line))
    conn.close()
    return events


def test_initial_added_then_changes(server: ApiServer, registry: Registry) -> None:
    registry.create(pod("a"))
    conn = connect(server)
    conn.request("GET", "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=5")
    resp = conn.getresponse()
    events = [json.loads(resp.readline())]  # the initial state: the watch is now established
    registry.create(pod("b"))
    registry.patch("Pod", "b", "default", {"metadata": {"labels": {"x": "1"}}})
    registry.delete("Pod", "b", "default")
    events += [json.loads(resp.readline()) for _ in range(3)]
    conn.close()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("MODIFIED", "b"),
        ("DELETED", "b"),
    ]


def test_from_resource_version_and_field_selector(server: ApiServer, registry: Registry) -> None:
    _, rv = registry.list("Pod")
    registry.create(pod("a"))
    registry.create(pod("b"))
    path = f"/api/v1/pods?watch=1&resourceVersion={rv}&fieldSelector=metadata.name%3Db&timeoutSeconds=2"
    events = _stream(server, path, 5)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "b")]


def test_field_selector_entering_is_added_and_leaving_is_deleted(
    server: ApiServer, registry: Registry
) -> None:
    registry.create(pod("a"))
    _, rv = registry.list("Pod")
    registry.patch("Pod", "a", "default", {"status": {"phase": "Running"}}, status=True)
    registry.patch("Pod", "a", "default", {"metadata": {"labels": {"x": "1"}}})
    registry.patch("Pod", "a", "default", {"status": {"phase": "Failed"}}, status=True)
    path = f"/api/v1/pods?watch=1&resourceVersion={rv}&fieldSelector=status.phase%3DRunning&timeoutSeconds=2"
    events = _stream(server, path, 5)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[2]["object"]["status"]["phase"] == "Running"  # the version that matched, as upstream


def test_compacted_revision_is_an_error_event(server: ApiServer, registry: Registry) -> None:
    for i in range(3):
        registry.create(pod(f"p{i}"))
    registry.store.compact(registry.store.current_revision())
    events = _stream(server, "/api/v1/pods?watch=true&resourceVersion=1&timeoutSeconds=2", 2)
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert status["kind"] == "Status" and status["code"] == 410 and status["reason"] == "Expired"


def test_generator_ends_when_stopping(registry: Registry) -> None:
    req = Request("GET", Route(lookup("pods")), {"timeoutSeconds": "60"})
    assert list(watch_events(registry, req, lambda: True)) == []


def test_table_watch_has_columns_once(server: ApiServer, registry: Registry) -> None:
    registry.create(pod("a"))
    registry.create(pod("b"))
    conn = connect(server)
    conn.request(
        "GET",
        "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=2",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
    )
    resp = conn.getresponse()
    first, second = json.loads(resp.readline()), json.loads(resp.readline())
    conn.close()
    assert first["object"]["kind"] == "Table" and first["object"]["columnDefinitions"]
    assert second["object"]["columnDefinitions"] == [] and second["object"]["rows"][0]["cells"][0] == "b"


def test_bookmarks_when_asked(registry: Registry, monkeypatch: Any) -> None:
    from nbkube.apiserver import watchstream

    monkeypatch.setattr(watchstream, "BOOKMARK_SECONDS", 0.0)
    req = Request("GET", Route(lookup("pods")), {"allowWatchBookmarks": "true", "timeoutSeconds": "1"})
    events = list(watch_events(registry, req, lambda: False))
    assert events and all(e["type"] == "BOOKMARK" for e in events)
    assert events[0]["object"]["kind"] == "Pod" and events[0]["object"]["metadata"]["resourceVersion"]
    plain = Request("GET", Route(lookup("pods")), {"timeoutSeconds": "1"})
    assert list(watch_events(registry, plain, lambda: False)) == []
