"""wirejson.loads_bounded: request bodies nested beyond any object are a 400, never a RecursionError."""

from __future__ import annotations

import pytest

from nbkube.api import wirejson
from nbkube.errors import BadRequest


@pytest.mark.parametrize("levels", [101, 1_000, 100_000])
def test_deep_nesting_is_a_bad_request(levels: int) -> None:
    with pytest.raises(BadRequest, match="nested more than 100 levels"):
        wirejson.loads_bounded(b"[" * levels + b"]" * levels)


def test_nesting_up_to_the_limit_parses() -> None:
    body = b'{"a":' * 99 + b"[]" + b"}" * 99
    value = wirejson.loads_bounded(body)
    assert wirejson.depth(value) == 100


def test_not_json_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="not valid JSON"):
        wirejson.loads_bounded(b'{"a":')


def test_depth_counts_shared_subtrees_once() -> None:
    leaf: list[object] = [[]]
    tree: list[object] = [leaf] * 1000
    for _ in range(30):
        tree = [tree] * 1000  # 1000**30 paths, but 32 distinct lists
    assert wirejson.depth(tree) == 33


def test_encoded_values_hold_no_more_memory_than_their_length() -> None:
    # encoded objects are kept (recent values, watch events): a writer's spare buffer must not be
    import tracemalloc

    obj = {"items": [{"metadata": {"name": f"pod-{i}", "labels": {"app": "web"}}} for i in range(3)]}
    tracemalloc.start()
    try:
        data = wirejson.dumps(obj)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert wirejson.loads(data) == obj
    assert held < len(data) + 512
