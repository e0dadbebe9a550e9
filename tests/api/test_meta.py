"""meta.json_clone: a deep copy of wire-shaped values that shares nothing mutable with its source."""

from __future__ import annotations

import copy

from nbkube.api.meta import json_clone


def test_json_clone_is_a_deep_copy_sharing_no_dict_or_list() -> None:
    source = {
        "metadata": {"name": "p", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "args": ["a", "b"], "ports": [{"containerPort": 80}]}]},
        "n": 1,
        "f": 0.5,
        "ok": True,
        "none": None,
        "nested": [[1, 2], [{"x": []}]],
    }
    snapshot = copy.deepcopy(source)
    cloned = json_clone(source)
    assert cloned == source
    cloned["metadata"]["labels"]["app"] = "db"
    cloned["spec"]["containers"][0]["args"].append("c")
    cloned["spec"]["containers"][0]["ports"][0]["containerPort"] = 81
    cloned["nested"][1][0]["x"].append(1)
    assert source == snapshot


def test_json_clone_of_scalars_and_empty_containers() -> None:
    assert json_clone("s") == "s" and json_clone(3) == 3 and json_clone(None) is None
    empty: dict[str, list[int]] = {"a": []}
    out = json_clone(empty)
    assert out == empty and out["a"] is not empty["a"]
