"""Continue tokens (upstream's encoding) and Registry.list_page over a snapshot."""

from __future__ import annotations

import pytest

from nbkube.errors import BadRequest
from nbkube.registry.continuation import LATEST, ContinueExpired, decode_continue, encode_continue
from nbkube.registry.registry import Registry


def test_round_trip_and_upstream_shape() -> None:
    token = encode_continue(42, "default/p1\x00")
    assert "=" not in token and decode_continue(token) == (42, "default/p1\x00")
    assert decode_continue(encode_continue(LATEST, "a")) == (LATEST, "a")
    for bad in (encode_continue(0, "a"), encode_continue(5, ""), encode_continue(5, "../x"), "%%%"):
        with pytest.raises(BadRequest, match="continue key is not valid"):
            decode_continue(bad)


def _cm(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"n": name}}}


def test_list_page_across_namespaces(api: Registry) -> None:
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}})
    for ns in ("default", "b"):
        for name in ("x", "y"):
            api.create({**_cm(name), "metadata": {**_cm(name)["metadata"], "namespace": ns}})  # type: ignore[dict-item]
    page = api.list_page("ConfigMap", limit=3)
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in page.items] == [
        ("b", "x"),
        ("b", "y"),
        ("default", "x"),
    ]
    assert page.remaining == 1
    rest = api.list_page("ConfigMap", limit=3, continue_token=page.continue_token)
    assert [o["metadata"]["name"] for o in rest.items] == ["y"] and rest.continue_token == ""
    assert rest.resource_version == page.resource_version
    only_y = api.list_page("ConfigMap", limit=1, predicate=lambda o: o["metadata"]["name"] == "y")
    assert [o["metadata"]["namespace"] for o in only_y.items] == ["b"] and only_y.remaining is None
    everything = api.list_page("ConfigMap")
    assert len(everything.items) == 4 and everything.continue_token == ""


def test_expired_snapshot(api: Registry) -> None:
    for name in ("a", "b"):
        api.create(_cm(name))
    page = api.list_page("ConfigMap", limit=1)
    api.create(_cm("c"))
    api.store.compact(api.store.current_revision())
    with pytest.raises(ContinueExpired) as info:
        api.list_page("ConfigMap", continue_token=page.continue_token)
    assert info.value.code == 410
    rest = api.list_page("ConfigMap", continue_token=info.value.continue_token)
    assert [o["metadata"]["name"] for o in rest.items] == ["b", "c"]


def test_every_page_says_how_many_are_left_of_its_snapshot(api: Registry) -> None:
    for i in range(23):
        api.create(_cm(f"c{i:02d}"))
    seen, token, lefts = 0, "", []
    while True:
        page = api.list_page("ConfigMap", "default", limit=5, continue_token=token)
        seen += len(page.items)
        lefts.append(page.remaining)
        if page.continue_token == "":
            break
        token = page.continue_token
        if seen == 10:
            api.create(_cm("c99"))  # after the snapshot: not counted, not listed
    assert seen == 23
    assert lefts == [18, 13, 8, 3, None]
