"""Tests for nbkube.api.patch: RFC 6902 JSON patch, RFC 7386 merge patch, strategic merge patch.

The API server hands these functions whatever kubectl sends, so besides the happy paths the tests
pin the error contract (a BadRequest naming the place) and that inputs are never modified.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from nbkube.api.patch import (
    FIELD_STRATEGIES,
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from nbkube.errors import BadRequest

# -- RFC 6902 --------------------------------------------------------------------------------------


def jp(doc: Any, *ops: dict[str, Any]) -> Any:
    """Apply ops and check that `doc` came through untouched."""
    before = copy.deepcopy(doc)
    out = json_patch(doc, list(ops))
    assert doc == before
    return out


def test_add_object_member() -> None:
    assert jp({"a": 1}, {"op": "add", "path": "/b", "value": 2}) == {"a": 1, "b": 2}


def test_add_replaces_an_existing_member() -> None:
    assert jp({"a": 1}, {"op": "add", "path": "/a", "value": [1]}) == {"a": [1]}


def test_add_array_element_inserts_before_index() -> None:
    doc = {"l": ["x", "z"]}
    assert jp(doc, {"op": "add", "path": "/l/1", "value": "y"}) == {"l": ["x", "y", "z"]}
    assert jp(doc, {"op": "add", "path": "/l/2", "value": "end"}) == {"l": ["x", "z", "end"]}


def test_add_dash_appends() -> None:
    assert jp({"l": [1]}, {"op": "add", "path": "/l/-", "value": 2}) == {"l": [1, 2]}


def test_add_root_replaces_document() -> None:
    assert jp({"a": 1}, {"op": "add", "path": "", "value": {"b": 2}}) == {"b": 2}


def test_add_nested_value_is_copied_not_aliased() -> None:
    value = {"deep": [1]}
    ops = [{"op": "add", "path": "/v", "value": value}]
    out = json_patch({}, ops)
    out["v"]["deep"].append(2)
    assert value == {"deep": [1]}


def test_remove_member_and_element() -> None:
    doc = {"a": 1, "l": [1, 2, 3]}
    assert jp(doc, {"op": "remove", "path": "/a"}) == {"l": [1, 2, 3]}
    assert jp(doc, {"op": "remove", "path": "/l/1"}) == {"a": 1, "l": [1, 3]}


def test_replace_keeps_key_order_and_requires_target() -> None:
    out = jp({"a": 1, "b": 2}, {"op": "replace", "path": "/a", "value": 9})
    assert list(out.items()) == [("a", 9), ("b", 2)]
    assert jp({"l": [1, 2]}, {"op": "replace", "path": "/l/0", "value": 0}) == {"l": [0, 2]}
    assert jp({"a": 1}, {"op": "replace", "path": "", "value": 3}) == 3
    with pytest.raises(PatchError, match=r"op 0 \(replace /nope\).*does not exist"):
        json_patch({"a": 1}, [{"op": "replace", "path": "/nope", "value": 1}])


def test_move() -> None:
    doc = {"a": {"b": 1}, "l": [1, 2, 3]}
    assert jp(doc, {"op": "move", "from": "/a/b", "path": "/c"}) == {"a": {}, "l": [1, 2, 3], "c": 1}
    assert jp(doc, {"op": "move", "from": "/l/0", "path": "/l/-"})["l"] == [2, 3, 1]
    assert jp(doc, {"op": "move", "from": "/a", "path": "/a"}) == doc


def test_move_into_own_child_is_refused() -> None:
    with pytest.raises(PatchError, match=r"op 0 \(move /a/b\).*own child"):
        json_patch({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/b"}])


def test_copy_is_deep() -> None:
    out = jp({"a": {"x": [1]}}, {"op": "copy", "from": "/a", "path": "/b"})
    assert out == {"a": {"x": [1]}, "b": {"x": [1]}}
    out["b"]["x"].append(2)
    assert out["a"] == {"x": [1]}


def test_test_op() -> None:
    doc = {"n": 1, "f": True, "s": "x", "o": {"a": [1, {"b": None}]}}
    assert jp(doc, {"op": "test", "path": "/o", "value": {"a": [1, {"b": None}]}}) == doc
    assert jp(doc, {"op": "test", "path": "/n", "value": 1.0}) == doc  # JSON has one number type
    with pytest.raises(PatchError, match="test failed"):
        json_patch(doc, [{"op": "test", "path": "/f", "value": 1}])  # true is not 1 in JSON
    with pytest.raises(PatchError, match="test failed"):
        json_patch(doc, [{"op": "test", "path": "/n", "value": True}])


def test_pointer_escapes() -> None:
    doc = {"a/b": 1, "m~n": 2, "~1": 3}
    assert jp(doc, {"op": "test", "path": "/a~1b", "value": 1}) == doc
    assert jp(doc, {"op": "test", "path": "/m~0n", "value": 2}) == doc
    assert jp(doc, {"op": "remove", "path": "/~01"}) == {"a/b": 1, "m~n": 2}  # "~01" is "~1"
    assert jp({}, {"op": "add", "path": "/", "value": 0}) == {"": 0}  # "/" is the key ""
    with pytest.raises(PatchError, match="bad escape"):
        json_patch(doc, [{"op": "remove", "path": "/a~2"}])


def test_ops_apply_in_order_and_failure_is_all_or_nothing() -> None:
    doc = {"l": []}
    out = jp(doc, {"op": "add", "path": "/l/-", "value": 1}, {"op": "add", "path": "/l/0", "value": 0})
    assert out == {"l": [0, 1]}
    with pytest.raises(PatchError, match=r"json patch op 1 \(remove /gone\)"):
        json_patch(doc, [{"op": "add", "path": "/x", "value": 1}, {"op": "remove", "path": "/gone"}])
    assert doc == {"l": []}


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ({"op": "add"}, "list of operations"),
        (["add"], r"op 0: must be an object"),
        ([{"op": "frob", "path": "/a"}], r"op 0 \(frob /a\): unknown op"),
        ([{"path": "/a", "value": 1}], "unknown op None"),
        ([{"op": "add", "value": 1}], "missing 'path'"),
        ([{"op": "add", "path": "/a"}], r"op 0 \(add /a\): missing 'value'"),
        ([{"op": "copy", "path": "/a"}], "missing 'from'"),
        ([{"op": "add", "path": "a", "value": 1}], "must start with '/'"),
        ([{"op": "add", "path": 3, "value": 1}], "path must be a string"),
        ([{"op": "add", "path": "/x/y", "value": 1}], r"'/x/y' does not exist"),
        ([{"op": "add", "path": "/l/01", "value": 1}], "not a list index"),
        ([{"op": "add", "path": "/l/3", "value": 1}], "out of range"),
        ([{"op": "remove", "path": "/l/2"}], "out of range"),
        ([{"op": "replace", "path": "/l/-", "value": 1}], "not a list index"),
        ([{"op": "add", "path": "/s/x", "value": 1}], "through a scalar"),
        ([{"op": "remove", "path": ""}], "whole document"),
        ([{"op": "test", "path": "/missing", "value": 1}], "does not exist"),
    ],
)
def test_json_patch_errors(ops: Any, message: str) -> None:
    doc = {"l": [1, 2], "s": "str"}
    with pytest.raises(BadRequest, match=message) as err:
        json_patch(doc, ops)
    assert err.value.code == 400
    assert doc == {"l": [1, 2], "s": "str"}


def test_json_patch_error_carries_path() -> None:
    with pytest.raises(PatchError) as err:
        json_patch({}, [{"op": "remove", "path": "/metadata/labels"}])
    assert err.value.path == "/metadata/labels"
    assert "/metadata/labels" in str(err.value)


def test_kubectl_json_patch_shape() -> None:
    pod = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "a"}]}}
    out = jp(
        pod,
        {"op": "replace", "path": "/spec/containers/0/image", "value": "b"},
        {"op": "add", "path": "/metadata/labels/tier", "value": "front"},
        {"op": "remove", "path": "/metadata/labels/app"},
    )
    assert out == {
        "metadata": {"labels": {"tier": "front"}},
        "spec": {"containers": [{"name": "c", "image": "b"}]},
    }


# -- RFC 7386 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "patch", "want"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),  # lists replace whole
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),  # nulls already in the document stay
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        ({"a": {"b": 1}}, {"a": {}}, {"a": {"b": 1}}),
        ({"a": 1}, {"a": {"x": None}}, {"a": {}}),
    ],
)
def test_merge_patch_rfc_semantics(doc: Any, patch: Any, want: Any) -> None:
    before_doc, before_patch = copy.deepcopy(doc), copy.deepcopy(patch)
    assert merge_patch(doc, patch) == want
    assert doc == before_doc and patch == before_patch


def test_merge_patch_result_does_not_alias_inputs() -> None:
    doc = {"keep": {"l": [1]}}
    patch = {"new": {"l": [2]}}
    out = merge_patch(doc, patch)
    out["keep"]["l"].append(9)
    out["new"]["l"].append(9)
    assert doc == {"keep": {"l": [1]}} and patch == {"new": {"l": [2]}}


def _random_value(rng: random.Random, depth: int) -> Any:
    choice = rng.randrange(7 if depth < 3 else 5)
    if choice == 0:
        return rng.randint(-5, 5)
    if choice == 1:
        return rng.choice(["", "x", "y z"])
    if choice == 2:
        return rng.choice([True, False, None])
    if choice == 3:
        return rng.random()
    if choice == 4:
        return []
    if choice == 5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice("abcde"): _random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return value


def _contains(result: Any, patch: Any) -> bool:
    if isinstance(patch, dict):
        return isinstance(result, dict) and all(
            k in result and _contains(result[k], v) for k, v in patch.items()
        )
    return bool(result == patch)


def test_merge_patch_properties_on_random_docs() -> None:
    rng = random.Random(7386)
    for _ in range(500):
        doc = {rng.choice("abcdef"): _random_value(rng, 0) for _ in range(rng.randrange(5))}
        patch = {rng.choice("abcdef"): _random_value(rng, 0) for _ in range(rng.randrange(4))}
        before_doc, before_patch = copy.deepcopy(doc), copy.deepcopy(patch)
        assert merge_patch(doc, {}) == doc
        once = merge_patch(doc, patch)
        assert merge_patch(once, patch) == once  # applying a merge patch twice changes nothing more
        # what a null-free patch sets is in the result: non-map values exactly, maps as a subset
        clean = _drop_nulls(patch)
        assert _contains(merge_patch(doc, clean), clean)
        # the strategic flavour with no tagged fields is the same merge
        assert strategic_merge_patch(doc, patch, "ConfigMap") == once
        assert doc == before_doc and patch == before_patch


def test_registry_uses_the_one_merge_patch() -> None:
    from nbkube.registry import registry

    assert registry.merge_patch is merge_patch
    assert not hasattr(registry, "_merge_patch")


# -- strategic merge patch --------------------------------------------------------------------------


def smp(doc: dict[str, Any], patch: dict[str, Any], kind: str) -> dict[str, Any]:
    """Apply and check that neither input was modified and the result aliases neither."""
    before_doc, before_patch = copy.deepcopy(doc), copy.deepcopy(patch)
    out = strategic_merge_patch(doc, patch, kind)
    assert doc == before_doc and patch == before_patch
    _scribble(out)
    assert doc == before_doc and patch == before_patch
    return strategic_merge_patch(doc, patch, kind)


def _scribble(value: Any) -> None:
    if isinstance(value, dict):
        for v in value.values():
            _scribble(v)
        value["__scribbled__"] = 1
    elif isinstance(value, list):
        for v in value:
            _scribble(v)
        value.append("__scribbled__")


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": list(containers), **spec},
    }


WEB = {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]}
SIDE = {"name": "side", "image": "busybox", "env": [{"name": "A", "value": "1"}]}


def names(items: list[dict[str, Any]], key: str = "name") -> list[Any]:
    return [i[key] for i in items]


def test_maps_merge_and_null_deletes() -> None:
    out = smp(
        pod(WEB), {"metadata": {"labels": {"tier": "front", "app": None}, "annotations": {"a": "b"}}}, "Pod"
    )
    assert out["metadata"]["labels"] == {"tier": "front"}
    assert out["metadata"]["annotations"] == {"a": "b"}
    assert out["spec"] == pod(WEB)["spec"]
    assert "gone" not in smp(pod(WEB), {"gone": None}, "Pod")


def test_containers_merge_by_name() -> None:
    out = smp(pod(WEB, SIDE), {"spec": {"containers": [{"name": "side", "image": "busybox:2"}]}}, "Pod")
    assert out["spec"]["containers"] == [WEB, {**SIDE, "image": "busybox:2"}]


def test_new_container_goes_before_server_only_items_as_upstream() -> None:
    # upstream orders patch items first unless a server-only item was stored before them
    out = smp(pod(WEB), {"spec": {"containers": [{"name": "new", "image": "x"}]}}, "Pod")
    assert names(out["spec"]["containers"]) == ["new", "web"]
    out = smp(
        pod(WEB, SIDE), {"spec": {"containers": [{"name": "side", "image": "b"}, {"name": "n"}]}}, "Pod"
    )
    assert names(out["spec"]["containers"]) == ["web", "side", "n"]


def test_kubectl_apply_shape_set_element_order_and_one_changed_image() -> None:
    # what `kubectl apply` sends after the image of one container changed in the manifest
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"}},
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
            "containers": [{"name": "side", "image": "busybox:1.36"}],
        },
    }
    out = smp(pod(WEB, SIDE), patch, "Pod")
    assert out["spec"]["containers"] == [WEB, {**SIDE, "image": "busybox:1.36"}]
    assert "$setElementOrder/containers" not in out["spec"]
    assert out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] == "{...}"


def test_kubectl_apply_shape_container_removed_and_field_cleared() -> None:
    # the manifest lost the sidecar and the web container's ports
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{"name": "web", "ports": None}, {"name": "side", "$patch": "delete"}],
        }
    }
    out = smp(pod(WEB, SIDE), patch, "Pod")
    assert out["spec"]["containers"] == [{"name": "web", "image": "nginx:1"}]


def test_set_element_order_reorders_without_content_change() -> None:
    out = smp(
        pod(WEB, SIDE), {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "web"}]}}, "Pod"
    )
    assert out["spec"]["containers"] == [SIDE, WEB]


def test_set_element_order_places_added_item() -> None:
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "mid"}, {"name": "side"}],
            "containers": [{"name": "mid", "image": "m"}],
        }
    }
    out = smp(pod(WEB, SIDE), patch, "Pod")
    assert names(out["spec"]["containers"]) == ["web", "mid", "side"]


def test_set_element_order_on_primitive_list() -> None:
    doc = {"metadata": {"name": "x", "finalizers": ["a", "b", "c"]}}
    out = smp(doc, {"metadata": {"$setElementOrder/finalizers": ["c", "a", "b"]}}, "ConfigMap")
    assert out["metadata"]["finalizers"] == ["c", "a", "b"]


def test_set_element_order_must_agree_with_patch_list() -> None:
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
            "containers": [{"name": "side", "image": "b"}, {"name": "web", "image": "a"}],
        }
    }
    with pytest.raises(PatchError, match=r"spec\.containers: .*\$setElementOrder") as err:
        strategic_merge_patch(pod(WEB, SIDE), patch, "Pod")
    assert err.value.path == "spec.containers"


def test_patch_delete_one_container() -> None:
    out = smp(pod(WEB, SIDE), {"spec": {"containers": [{"name": "web", "$patch": "delete"}]}}, "Pod")
    assert out["spec"]["containers"] == [SIDE]
    # deleting what is not there is not an error
    assert smp(pod(WEB), {"spec": {"containers": [{"name": "x", "$patch": "delete"}]}}, "Pod") == pod(WEB)


def test_patch_replace_as_list_item_replaces_the_list() -> None:
    patch = {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "o"}]}}
    out = smp(pod(WEB, SIDE), patch, "Pod")
    assert out["spec"]["containers"] == [{"name": "only", "image": "o"}]


def test_patch_replace_on_a_map() -> None:
    out = smp(pod(WEB), {"metadata": {"labels": {"$patch": "replace", "new": "1"}}}, "Pod")
    assert out["metadata"]["labels"] == {"new": "1"}
    out = smp({"a": {"b": 1}}, {"$patch": "replace", "c": 2}, "ConfigMap")
    assert out == {"c": 2}


def test_patch_delete_on_a_map_empties_it() -> None:
    out = smp(pod(WEB), {"metadata": {"labels": {"$patch": "delete"}}}, "Pod")
    assert out["metadata"]["labels"] == {}


def test_patch_merge_on_a_map_is_the_default() -> None:
    out = smp(pod(WEB), {"metadata": {"labels": {"$patch": "merge", "b": "2"}}}, "Pod")
    assert out["metadata"]["labels"] == {"app": "web", "b": "2"}


def test_retain_keys_clears_unlisted_fields() -> None:
    deploy = {
        "kind": "Deployment",
        "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}, "replicas": 2},
    }
    out = smp(deploy, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}, "Deployment")
    assert out["spec"] == {"strategy": {"type": "Recreate"}, "replicas": 2}


def test_retain_keys_must_cover_the_patch() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {}}}}
    with pytest.raises(PatchError, match=r"spec\.strategy\.rollingUpdate: .*\$retainKeys"):
        strategic_merge_patch({"spec": {}}, patch, "Deployment")
    with pytest.raises(PatchError, match="list of field names"):
        strategic_merge_patch({"spec": {}}, {"spec": {"$retainKeys": "type"}}, "Deployment")


def test_retain_keys_in_a_volume() -> None:
    vols = [{"name": "v", "emptyDir": {}}, {"name": "w", "hostPath": {"path": "/w"}}]
    patch = {
        "spec": {"volumes": [{"name": "v", "$retainKeys": ["name", "configMap"], "configMap": {"name": "c"}}]}
    }
    out = smp(pod(WEB, volumes=vols), patch, "Pod")
    assert out["spec"]["volumes"] == [{"name": "v", "configMap": {"name": "c"}}, vols[1]]


def test_finalizers_merge_as_a_set_and_delete_from_primitive_list() -> None:
    doc = {"metadata": {"name": "n", "finalizers": ["a", "b"]}}
    out = smp(doc, {"metadata": {"finalizers": ["b", "c"]}}, "Namespace")
    assert sorted(out["metadata"]["finalizers"]) == ["a", "b", "c"]
    assert len(out["metadata"]["finalizers"]) == 3
    out = smp(doc, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "zz"]}}, "Namespace")
    assert out["metadata"]["finalizers"] == ["b"]
    out = smp({"metadata": {}}, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, "Pod")
    assert out == {"metadata": {}}


def test_delete_from_primitive_list_with_set_element_order() -> None:
    # what apply sends when a finalizer was removed from the manifest
    doc = {"metadata": {"finalizers": ["a", "b", "c"]}}
    patch = {
        "metadata": {"$setElementOrder/finalizers": ["c", "a"], "$deleteFromPrimitiveList/finalizers": ["b"]}
    }
    assert smp(doc, patch, "Pod")["metadata"]["finalizers"] == ["c", "a"]


def test_owner_references_merge_by_uid() -> None:
    doc = {"metadata": {"ownerReferences": [{"uid": "1", "kind": "ReplicaSet", "name": "a"}]}}
    patch = {"metadata": {"ownerReferences": [{"uid": "1", "controller": True}, {"uid": "2", "name": "b"}]}}
    refs = smp(doc, patch, "Pod")["metadata"]["ownerReferences"]
    assert refs == [
        {"uid": "1", "kind": "ReplicaSet", "name": "a", "controller": True},
        {"uid": "2", "name": "b"},
    ]


def deployment(*containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": list(containers)}},
        },
    }


def test_env_merges_by_name_inside_a_deployment_template() -> None:
    app = {"name": "app", "image": "i", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "env": [
                                {"name": "B", "value": "20"},
                                {"name": "C", "value": "3"},
                                {"name": "A", "$patch": "delete"},
                            ],
                        }
                    ]
                }
            }
        }
    }
    out = smp(deployment(app, SIDE), patch, "Deployment")
    containers = out["spec"]["template"]["spec"]["containers"]
    assert containers[1] == SIDE
    assert containers[0]["image"] == "i"
    assert containers[0]["env"] == [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}]


@pytest.mark.parametrize("kind", ["ReplicationController", "ReplicaSet", "Deployment"])
def test_template_paths_for_every_workload_kind(kind: str) -> None:
    app = {"name": "app", "image": "i", "ports": [{"containerPort": 80, "name": "http"}]}
    patch = {
        "spec": {
            "template": {
                "metadata": {"finalizers": ["f"]},
                "spec": {"containers": [{"name": "app", "ports": [{"containerPort": 81}]}]},
            }
        }
    }
    out = smp({**deployment(app), "kind": kind}, patch, kind)
    ports = out["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert ports == [{"containerPort": 81}, {"containerPort": 80, "name": "http"}]  # patch items first
    assert out["spec"]["template"]["metadata"] == {"labels": {"app": "d"}, "finalizers": ["f"]}


def test_init_containers_volume_mounts_and_image_pull_secrets() -> None:
    spec = {
        "initContainers": [{"name": "init", "volumeMounts": [{"mountPath": "/a", "name": "v"}]}],
        "imagePullSecrets": [{"name": "s1"}],
    }
    patch = {
        "spec": {
            "initContainers": [{"name": "init", "volumeMounts": [{"mountPath": "/a", "readOnly": True}]}],
            "imagePullSecrets": [{"name": "s2"}],
        }
    }
    out = smp(pod(WEB, **spec), patch, "Pod")
    assert out["spec"]["initContainers"] == [
        {"name": "init", "volumeMounts": [{"mountPath": "/a", "name": "v", "readOnly": True}]}
    ]
    assert sorted(names(out["spec"]["imagePullSecrets"])) == ["s1", "s2"]


def test_tolerations_and_untagged_lists_are_replaced() -> None:
    doc = pod(WEB, tolerations=[{"key": "a", "operator": "Exists"}])
    out = smp(doc, {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}, "Pod")
    assert out["spec"]["tolerations"] == [{"key": "b", "operator": "Exists"}]
    cm = {"metadata": {"name": "c"}, "data": {"a": "1"}, "list": [1, 2]}
    assert smp(cm, {"list": [3]}, "ConfigMap")["list"] == [3]


def test_endpoints_subsets_are_replaced() -> None:
    doc = {"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}
    patch = {"subsets": [{"addresses": [{"ip": "10.0.0.2"}], "ports": [{"port": 80}]}]}
    assert smp(doc, patch, "Endpoints") == patch


def test_conditions_merge_by_type_in_status() -> None:
    doc = pod(
        WEB,
    ) | {
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
        }
    }
    patch = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    out = smp(doc, patch, "Pod")
    assert out["status"] == {
        "phase": "Running",
        "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
    }
    for kind in ("Node", "Deployment", "ReplicaSet", "ReplicationController", "Namespace", "Service"):
        assert FIELD_STRATEGIES[kind]["status.conditions"].merge_key == "type"


def test_service_ports_by_port_and_node_addresses_by_type() -> None:
    svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}
    out = smp(svc, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}, "Service")
    assert out["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]
    node = {
        "status": {
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n"}]
        }
    }
    out = smp(node, {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.9"}]}}, "Node")
    assert out["status"]["addresses"] == [
        {"type": "InternalIP", "address": "10.0.0.9"},
        {"type": "Hostname", "address": "n"},
    ]


def test_kubectl_scale_label_annotate_shapes() -> None:
    d = deployment(WEB)
    assert smp(d, {"spec": {"replicas": 5}}, "Deployment")["spec"]["replicas"] == 5
    out = smp(d, {"metadata": {"labels": {"env": "prod"}}}, "Deployment")
    assert out["metadata"]["labels"] == {"env": "prod"}
    restart = {
        "spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "t"}}}}
    }
    out = smp(d, restart, "Deployment")
    assert out["spec"]["template"]["metadata"]["annotations"] == {"kubectl.kubernetes.io/restartedAt": "t"}
    assert out["spec"]["template"]["spec"] == d["spec"]["template"]["spec"]


def test_type_change_replaces() -> None:
    assert smp({"a": "s"}, {"a": {"b": 1}}, "ConfigMap") == {"a": {"b": 1}}
    assert smp({"a": {"b": 1}}, {"a": [1]}, "ConfigMap") == {"a": [1]}


def test_directives_in_values_new_to_the_document_are_applied_not_stored() -> None:
    doc = {"metadata": {"name": "p"}, "spec": {}}
    patch = {
        "spec": {
            "containers": [{"name": "a", "image": "i"}, {"name": "gone", "$patch": "delete"}],
            "nodeSelector": {"$patch": "replace", "disk": "ssd", "x": None},
        }
    }
    out = smp(doc, patch, "Pod")
    assert out["spec"] == {"containers": [{"name": "a", "image": "i"}], "nodeSelector": {"disk": "ssd"}}


def test_unknown_kind_still_merges_metadata() -> None:
    doc = {"metadata": {"finalizers": ["a"]}, "spec": {"items": [{"name": "x"}]}}
    out = smp(doc, {"metadata": {"finalizers": ["b"]}, "spec": {"items": [{"name": "y"}]}}, "Widget")
    assert sorted(out["metadata"]["finalizers"]) == ["a", "b"]
    assert out["spec"]["items"] == [{"name": "y"}]


# bad input: each names where it went wrong


@pytest.mark.parametrize(
    ("patch", "path", "message"),
    [
        ({"spec": {"containers": {"name": "web"}}}, "spec.containers", "expected a list, got a map"),
        ({"spec": {"containers": "web"}}, "spec.containers", "expected a list, got a str"),
        (
            {"spec": {"containers": [{"image": "x"}]}},
            "spec.containers",
            r"spec\.containers\[0\]: patch item has no merge key 'name'",
        ),
        (
            {"spec": {"containers": [{"$patch": "delete"}]}},
            "spec.containers",
            r"\[0\]: \$patch delete without the merge key",
        ),
        ({"spec": {"containers": ["web"]}}, "spec.containers", "mixes maps and primitive"),
        ({"spec": {"containers": [[1]]}}, "spec.containers", "lists of lists"),
        (
            {"spec": {"containers": [{"name": "web", "$patch": "merge"}]}},
            "spec.containers",
            r"unknown \$patch directive 'merge' in a list",
        ),
        (
            {"spec": {"containers": [{"name": "web", "ports": [{"name": "http"}]}]}},
            "spec.containers[name=web].ports",
            "merge key 'containerPort'",
        ),
        ({"spec": {"$frobnicate": 1}}, "spec", r"spec\.\$frobnicate: unknown directive"),
        (
            {"metadata": {"labels": {"$patch": "explode"}}},
            "metadata.labels",
            "unknown \\$patch directive 'explode'",
        ),
        ({"spec": {"$setElementOrder/": []}}, "spec", "names no field"),
        (
            {"spec": {"$setElementOrder/containers": {"name": "web"}}},
            "spec.$setElementOrder/containers",
            "must be a list",
        ),
        (
            {"spec": {"$setElementOrder/containers": [{"image": "x"}]}},
            "spec.containers",
            "has no merge key 'name'",
        ),
        (
            {"spec": {"$setElementOrder/containers": [{"name": "web"}], "containers": [{"image": "x"}]}},
            "spec.containers",
            "patch item has no merge key 'name'",
        ),
        ({"spec": {"$setElementOrder/tolerations": []}}, "spec.tolerations", "without merge strategy"),
        (
            {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}},
            "metadata.$deleteFromPrimitiveList/finalizers",
            "must be a list",
        ),
        ({"metadata": {"$deleteFromPrimitiveList/name": ["p"]}}, "metadata.name", "on a str"),
        ({"metadata": {"finalizers": [{"a": 1}]}}, "metadata.finalizers", "without a merge key"),
    ],
)
def test_strategic_merge_patch_bad_input(patch: dict[str, Any], path: str, message: str) -> None:
    doc = pod(WEB, SIDE)
    before = copy.deepcopy(doc)
    with pytest.raises(BadRequest, match=message) as err:
        strategic_merge_patch(doc, patch, "Pod")
    assert isinstance(err.value, PatchError)
    assert err.value.code == 400
    assert err.value.path == path
    assert path in str(err.value)
    assert doc == before


def test_stored_item_without_merge_key_is_reported() -> None:
    doc = pod({"image": "no-name"})
    with pytest.raises(PatchError, match=r"spec\.containers\[0\]: document item has no merge key"):
        strategic_merge_patch(doc, {"spec": {"containers": [{"name": "a"}]}}, "Pod")


def test_non_map_document_or_patch() -> None:
    with pytest.raises(PatchError, match="patch must be a map"):
        strategic_merge_patch({}, [], "Pod")  # type: ignore[arg-type]
    with pytest.raises(PatchError, match="document must be a map"):
        strategic_merge_patch([], {}, "Pod")  # type: ignore[arg-type]


def test_empty_patch_is_identity_for_a_full_pod() -> None:
    doc = pod(WEB, SIDE, volumes=[{"name": "v", "emptyDir": {}}]) | {
        "status": {"conditions": [{"type": "Ready"}]}
    }
    assert smp(doc, {}, "Pod") == doc
