"""limit/continue: pages of one consistent snapshot, opaque tokens, 410 with a fresh token, 400 for
a tampered one, and kubectl --chunk-size listing everything."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest
from nbk_apitest import KUBECTL, Kubectl, call, pod

from nbkube.apiserver import ApiServer
from nbkube.registry.registry import Registry

PODS = "/api/v1/namespaces/default/pods"


def _names(body: dict) -> list[str]:  # type: ignore[type-arg]
    return [o["metadata"]["name"] for o in body["items"]]


def _fill(server: ApiServer, n: int) -> None:
    for i in range(n):
        code, _, _ = call(server, "POST", PODS, pod(f"p{i}", app="odd" if i % 2 else "even"))
        assert code == 201


def test_pages_cover_the_list_once_with_remaining_counts(server: ApiServer) -> None:
    _fill(server, 5)
    code, page, _ = call(server, "GET", f"{PODS}?limit=2")
    assert code == 200 and _names(page) == ["p0", "p1"]
    meta = page["metadata"]
    assert meta["remainingItemCount"] == 3 and meta["continue"]
    rv = meta["resourceVersion"]
    seen = _names(page)
    while meta.get("continue"):
        code, page, _ = call(server, "GET", f"{PODS}?limit=2&continue={quote(meta['continue'])}")
        assert code == 200 and page["metadata"]["resourceVersion"] == rv
        meta = page["metadata"]
        seen += _names(page)
    assert seen == ["p0", "p1", "p2", "p3", "p4"]
    assert "remainingItemCount" not in meta  # the last page
    code, whole, _ = call(server, "GET", f"{PODS}?limit=5")
    assert _names(whole) == seen and "continue" not in whole["metadata"]


def test_later_pages_read_the_first_pages_snapshot(server: ApiServer) -> None:
    _fill(server, 4)
    _, first, _ = call(server, "GET", f"{PODS}?limit=2")
    # changes after the first page are not seen by the next ones
    call(server, "DELETE", f"{PODS}/p3")
    call(server, "POST", PODS, pod("p9"))
    _, second, _ = call(server, "GET", f"{PODS}?limit=10&continue={quote(first['metadata']['continue'])}")
    assert _names(second) == ["p2", "p3"]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


def test_selectors_fill_pages_and_leave_out_remaining(server: ApiServer) -> None:
    _fill(server, 6)
    _, page, _ = call(server, "GET", f"{PODS}?limit=2&labelSelector=app%3Dodd")
    assert _names(page) == ["p1", "p3"] and "remainingItemCount" not in page["metadata"]
    _, rest, _ = call(
        server,
        "GET",
        f"{PODS}?limit=2&labelSelector=app%3Dodd&continue={quote(page['metadata']['continue'])}",
    )
    assert _names(rest) == ["p5"] and "continue" not in rest["metadata"]
    _, fs, _ = call(server, "GET", f"{PODS}?limit=1&fieldSelector=metadata.name%21%3Dp0")
    assert _names(fs) == ["p1"] and fs["metadata"]["continue"]


def test_compacted_snapshot_is_410_with_a_token_that_goes_on(server: ApiServer, registry: Registry) -> None:
    _fill(server, 3)
    _, first, _ = call(server, "GET", f"{PODS}?limit=1")
    call(server, "POST", PODS, pod("p3"))
    registry.store.compact(registry.store.current_revision())
    code, status, _ = call(server, "GET", f"{PODS}?limit=1&continue={quote(first['metadata']['continue'])}")
    assert code == 410 and status["reason"] == "Expired" and status["metadata"]["continue"]
    _, rest, _ = call(server, "GET", f"{PODS}?continue={quote(status['metadata']['continue'])}")
    assert _names(rest) == ["p1", "p2", "p3"]  # the inconsistent remainder, at the latest revision


def test_tampered_tokens_and_bad_limits_are_400(server: ApiServer) -> None:
    _fill(server, 2)
    _, page, _ = call(server, "GET", f"{PODS}?limit=1")
    token = page["metadata"]["continue"]
    doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert set(doc) == {"v", "rv", "start"}
    for bad in (
        "not-a-token!",
        base64.urlsafe_b64encode(b"{}").decode(),
        base64.urlsafe_b64encode(json.dumps({**doc, "rv": 0}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({**doc, "start": "/etc"}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({**doc, "rv": doc["rv"] + 1000}).encode()).decode(),
        token[:-3],
    ):
        code, body, _ = call(server, "GET", f"{PODS}?limit=1&continue={quote(bad)}")
        assert code == 400, (bad, body)
    assert call(server, "GET", f"{PODS}?limit=ten")[0] == 400
    code, body, _ = call(server, "GET", f"{PODS}?limit=1&resourceVersion=5&continue={quote(token)}")
    assert code == 400 and "continue" in body["message"]


def test_table_pages_carry_the_token(server: ApiServer) -> None:
    _fill(server, 3)
    _, table, _ = call(
        server, "GET", f"{PODS}?limit=2", accept="application/json;as=Table;v=v1;g=meta.k8s.io"
    )
    assert table["kind"] == "Table" and len(table["rows"]) == 2 and table["metadata"]["continue"]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_chunk_size_lists_everything(kubectl: Kubectl, server: ApiServer) -> None:
    _fill(server, 5)
    out = kubectl.ok("get", "pods", "--chunk-size=1", "-o", "name")
    assert out.split() == [f"pod/p{i}" for i in range(5)]
    table = kubectl.ok("get", "pods", "--chunk-size=2")
    assert [line.split()[0] for line in table.splitlines()[1:]] == [f"p{i}" for i in range(5)]
