"""Fixtures for the API server tests: a Registry over in-memory SQLite served on 127.0.0.1, a
kubeconfig for it, and a bounded `kubectl` runner.

`nbkube.api.patch` is written in parallel with the API server. Until it lands, a deliberately
minimal stand-in (RFC 7386 merge patch; RFC 6902 add/replace/remove/test; "strategic" = merge) is
installed for these tests only, so the PATCH paths can be exercised; tests that need real strategic
semantics skip when the stand-in is in use.
"""

from __future__ import annotations

import copy
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from nbkube.errors import BadRequest

try:
    import nbkube.api.patch  # noqa: F401
except ImportError:

    def _merge(target: Any, patch: Any) -> Any:
        if not isinstance(patch, dict):
            return copy.deepcopy(patch)
        out = dict(target) if isinstance(target, dict) else {}
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = _merge(out.get(k), v)
        return out

    def _pointer(path: str) -> list[str]:
        return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]

    def _json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
        doc = copy.deepcopy(doc)
        for op in ops:
            *parents, last = _pointer(op["path"])
            cur = doc
            for p in parents:
                cur = cur[int(p)] if isinstance(cur, list) else cur[p]
            if op["op"] == "test":
                have = cur[int(last)] if isinstance(cur, list) else cur.get(last)
                if have != op["value"]:
                    raise BadRequest(f"test failed at {op['path']}")
            elif op["op"] == "remove":
                del cur[int(last) if isinstance(cur, list) else last]
            elif op["op"] in ("add", "replace"):
                if isinstance(cur, list):
                    cur.insert(len(cur) if last == "-" else int(last), op["value"])
                else:
                    cur[last] = op["value"]
            else:
                raise BadRequest(f"unsupported op {op['op']}")
        return doc

    _mod = types.ModuleType("nbkube.api.patch")
    _mod.merge_patch = lambda doc, patch: _merge(doc, patch)  # type: ignore[attr-defined]
    _mod.json_patch = _json_patch  # type: ignore[attr-defined]
    _mod.strategic_merge_patch = lambda doc, patch, kind: _merge(doc, patch)  # type: ignore[attr-defined]
    _mod.NBKUBE_TEST_STAND_IN = True  # type: ignore[attr-defined]
    sys.modules["nbkube.api.patch"] = _mod

from nbk_apitest import KUBECTL, Kubectl  # noqa: E402

from nbkube.apiserver import ApiServer  # noqa: E402
from nbkube.registry.registry import Registry  # noqa: E402
from nbkube.store import open_store  # noqa: E402


@pytest.fixture
def registry() -> Iterator[Registry]:
    reg = Registry(open_store("sqlite://:memory:"))
    yield reg
    reg.close()


@pytest.fixture
def server(registry: Registry) -> Iterator[ApiServer]:
    srv = ApiServer(registry).start()
    yield srv
    srv.stop()


@pytest.fixture
def kubeconfig(server: ApiServer, tmp_path: Any) -> str:
    return server.write_kubeconfig(str(tmp_path / "kubeconfig"))


@pytest.fixture
def kubectl(kubeconfig: str, tmp_path: Any) -> Kubectl:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    home = tmp_path / "home"
    home.mkdir()
    return Kubectl(kubeconfig, str(home))
