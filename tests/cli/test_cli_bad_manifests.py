"""Every malformed manifest in tests/data/bad is refused by `nbkube apply -f`: exit 1, one error line
naming the file, no traceback, and nothing written to the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from nbk_clitest import REPO, Run

from nbkube.store import open_store

BAD = sorted(p for p in (REPO / "tests" / "data" / "bad").iterdir() if p.suffix in (".yaml", ".json"))


def test_the_corpus_is_large() -> None:
    assert len(BAD) >= 60


def _contents(store_url: str) -> dict[str, bytes]:
    store = open_store(store_url)
    try:
        kvs, _rev = store.list("/registry/")
        return {kv.key: kv.value for kv in kvs}
    finally:
        store.close()


@pytest.mark.parametrize("path", BAD, ids=[p.name for p in BAD])
def test_apply_refuses_and_writes_nothing(path: Path, nbkube: Run, store_url: str) -> None:
    assert nbkube("get", "pods").code == 0  # the store exists, with whatever a first start writes
    before = _contents(store_url)
    result = nbkube("apply", "-f", str(path))
    assert result.code == 1, result.out
    assert len(result.err_lines) == 1, result.err
    line = result.err_lines[0]
    assert line.startswith("error: ") and str(path) in line
    assert "Traceback" not in result.err
    assert result.out == ""
    assert _contents(store_url) == before
