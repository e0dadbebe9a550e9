"""Every malformed manifest in tests/data/bad, sent to the API as kubectl would (POST with
fieldValidation=Strict), is answered with a 4xx Status and writes nothing (see tests/data/bad/README.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from nbkube.api import kinds, wirejson
from nbkube.apiserver import status
from nbkube.apiserver.resources import Request, handle
from nbkube.apiserver.routing import Route
from nbkube.errors import BadRequest, NbkubeError
from nbkube.registry.registry import Registry

BAD_DIR = Path(__file__).resolve().parents[1] / "data" / "bad"
BAD = sorted(p for p in BAD_DIR.iterdir() if p.suffix in (".yaml", ".json"))


def _contents(registry: Registry) -> dict[str, bytes]:
    kvs, _rev = registry.store.list("/registry/")
    return {kv.key: kv.value for kv in kvs}


def _last_object(path: Path) -> Any:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    last = docs[-1]
    if isinstance(last, dict) and last.get("kind") == "List":
        return last["items"][-1]
    return last


def _route_for(body: Any) -> Route:
    """The collection URL kubectl would post `body` to; pods for what names no known kind."""
    try:
        info = kinds.for_manifest(body["apiVersion"], body["kind"])
    except (TypeError, KeyError, BadRequest):
        info = kinds.lookup("Pod")
    return Route(info, "default" if info.namespaced else "")


@pytest.mark.parametrize("path", BAD, ids=[p.name for p in BAD])
def test_create_is_refused_with_a_4xx_status(path: Path, registry: Registry) -> None:
    before = _contents(registry)
    if path.name.startswith(("yaml-", "json-")):
        with pytest.raises(BadRequest, match="the request body is not valid JSON"):
            wirejson.loads_bounded(path.read_bytes())
        return
    body = _last_object(path)
    request = Request("POST", _route_for(body), {"fieldValidation": "Strict"}, body)
    with pytest.raises(NbkubeError) as info:
        handle(registry, request)
    code, answer = status.status_for(info.value)
    assert 400 <= code < 500, answer
    assert answer["kind"] == "Status" and answer["status"] == "Failure" and answer["code"] == code
    assert _contents(registry) == before


def test_deeply_nested_json_body_is_a_bad_request() -> None:
    body = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":' + b"[" * 5000
    body += b"]" * 5000 + b"}}"
    with pytest.raises(BadRequest, match="nested more than"):
        wirejson.loads_bounded(body)
