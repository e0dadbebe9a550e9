"""Field sets, their FieldsV1 encoding, Update ownership and server-side apply's merge, conflicts
and removal (nbkube/api/managedfields.py), on plain objects."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from nbkube.api import managedfields as mf
from nbkube.errors import BadRequest

Obj = dict[str, Any]


def deployment(replicas: int | None = 2, image: str = "busybox", **extra_labels: str) -> Obj:
    obj: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", **extra_labels}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": image, "ports": [{"containerPort": 80}]}]},
            },
        },
    }
    if replicas is not None:
        obj["spec"]["replicas"] = replicas
    return obj


def apply(live: Obj | None, config: Obj, manager: str = "mgr", now: str = "T1", force: bool = False) -> Obj:
    return mf.apply(
        live, config, kind="Deployment", api_version="apps/v1", manager=manager, now=now, force=force
    )


def update(old: Obj | None, new: Obj, manager: str, now: str = "T2", subresource: str = "") -> Obj:
    new = copy.deepcopy(new)
    mf.record_update(
        old, new, kind="Deployment", api_version="apps/v1", manager=manager, now=now, subresource=subresource
    )
    return new


def entries(obj: Obj) -> dict[str, Obj]:
    return {f"{e['manager']}/{e['operation']}": e for e in obj["metadata"].get("managedFields", [])}


def test_applied_fields_in_upstream_fieldsv1_encoding() -> None:
    fields = mf.to_fields_v1(mf.applied_fields(deployment(), "Deployment"))
    assert fields == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},  # a LabelSelector is atomic
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"c"}': {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {
                                # the protocol key is filled with its default, as upstream does
                                'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}
                            },
                        }
                    }
                },
            },
        },
    }
    # name and namespace are the server's, never a manager's
    assert "f:name" not in fields["f:metadata"]


def test_set_lists_and_atomic_lists() -> None:
    config = {
        "metadata": {"finalizers": ["a/b", "c"]},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "args": ["x", "y"]}]}}},
    }
    fields = mf.applied_fields(config, "Deployment")
    assert ("f:metadata", "f:finalizers", 'v:"a/b"') in fields
    args = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"c"}', "f:args")
    assert args in fields and not any(len(p) > len(args) and p[: len(args)] == args for p in fields)


def test_fieldsv1_round_trip_and_malformed() -> None:
    paths = mf.applied_fields(deployment(), "Deployment") | {("f:spec", "f:template")}
    encoded = mf.to_fields_v1(paths)
    assert list(encoded["f:spec"]["f:template"])[0] == "."  # a member with children: "." first
    assert mf.from_fields_v1(encoded) == paths
    with pytest.raises(BadRequest, match='unexpected key "spec"'):
        mf.from_fields_v1({"spec": {}})
    with pytest.raises(BadRequest, match="not valid JSON"):
        mf.from_fields_v1({"k:{name": {}})


def test_path_strings() -> None:
    path = (
        "f:spec",
        "f:template",
        "f:spec",
        "f:containers",
        'k:{"name":"c"}',
        "f:ports",
        'k:{"containerPort":80,"protocol":"TCP"}',
        "f:containerPort",
    )
    assert (
        mf.path_string(path)
        == '.spec.template.spec.containers[name="c"].ports[containerPort=80,protocol="TCP"].containerPort'
    )
    assert mf.path_string(("f:metadata", "f:finalizers", 'v:"x"')) == '.metadata.finalizers[="x"]'


def test_compare_marks_added_maps_and_finds_changes() -> None:
    old = deployment()
    new = deployment(replicas=3, tier="db")
    del new["spec"]["template"]["spec"]["containers"][0]["ports"]
    added, modified, removed = mf.compare(old, new, "Deployment")
    assert added == {("f:metadata", "f:labels", "f:tier")}
    assert modified == {("f:spec", "f:replicas")}
    ports = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"c"}', "f:ports")
    assert (
        ports in removed and (*ports, 'k:{"containerPort":80,"protocol":"TCP"}', "f:containerPort") in removed
    )


def test_update_on_create_owns_everything_with_markers() -> None:
    created = update(None, deployment(), "kubectl-client-side-apply", now="T0")
    (entry,) = created["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["apiVersion"], entry["time"]) == (
        "kubectl-client-side-apply",
        "Update",
        "apps/v1",
        "T0",
    )
    f = entry["fieldsV1"]
    assert f["f:metadata"]["f:labels"] == {".": {}, "f:app": {}}  # a map the write added
    assert "." not in f["f:spec"] and "." not in f["f:spec"]["f:template"]  # structs that always exist
    assert f["f:spec"]["f:replicas"] == {}


def test_update_takes_fields_from_other_managers_and_keeps_time_when_idle() -> None:
    created = update(None, deployment(), "creator", now="T0")
    scaled = copy.deepcopy(created)
    scaled["spec"]["replicas"] = 5
    scaled = update(created, scaled, "kubectl", now="T1", subresource="scale")
    owners = entries(scaled)
    assert ("f:spec", "f:replicas") not in mf.from_fields_v1(owners["creator/Update"]["fieldsV1"])
    assert owners["kubectl/Update"]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert owners["kubectl/Update"]["subresource"] == "scale"
    again = update(scaled, scaled, "creator", now="T9")  # a write that changes nothing
    assert again["metadata"]["managedFields"] == scaled["metadata"]["managedFields"]


def test_update_with_managed_fields_given_or_reset() -> None:
    created = update(None, deployment(), "creator")
    given = copy.deepcopy(created)
    given["metadata"]["managedFields"] = [
        {
            "manager": "someone",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:replicas": {}}},
        }
    ]
    taken = update(created, given, "editor")
    assert [e["manager"] for e in taken["metadata"]["managedFields"]] == ["someone"]
    reset = copy.deepcopy(created)
    reset["metadata"]["managedFields"] = [{}]
    assert "managedFields" not in update(created, reset, "editor")["metadata"]
    bad = copy.deepcopy(created)
    bad["metadata"]["managedFields"] = [{"manager": "x", "operation": "Replace"}]
    with pytest.raises(BadRequest, match=r"managedFields\[0\].operation"):
        update(created, bad, "editor")


def test_update_managers_are_capped() -> None:
    obj = update(None, deployment(), "m0", now="T00")
    for i in range(1, 13):
        new = copy.deepcopy(obj)
        new["metadata"]["labels"][f"l{i}"] = "x"
        obj = update(obj, new, f"m{i}", now=f"T{i:02d}")
    managers = [e["manager"] for e in obj["metadata"]["managedFields"]]
    assert len(managers) == mf.MAX_UPDATE_MANAGERS and "ancient-changes" in managers
    assert "m12" in managers and "m0" not in managers


def test_apply_creates_with_the_applier_as_owner() -> None:
    created = apply(None, deployment())
    (entry,) = created["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"]) == ("mgr", "Apply")
    assert created["spec"]["replicas"] == 2


def test_apply_conflict_names_fields_and_managers() -> None:
    live = update(None, deployment(), "kubectl-client-side-apply")
    with pytest.raises(mf.ApplyConflict) as err:
        apply(live, deployment(replicas=3, image="nginx"))
    assert str(err.value) == (
        'Apply failed with 2 conflicts: conflicts with "kubectl-client-side-apply" using apps/v1:\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="c"].image'
    )
    assert err.value.causes[0] == {
        "type": "FieldManagerConflict",
        "message": 'conflict with "kubectl-client-side-apply" using apps/v1',
        "field": ".spec.replicas",
    }
    with pytest.raises(
        mf.ApplyConflict,
        match=r'^Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: \.spec\.replicas$',
    ):
        apply(live, deployment(replicas=3))


def test_apply_same_values_is_shared_ownership_and_force_takes_fields() -> None:
    live = update(None, deployment(), "other")
    shared = apply(live, deployment())  # same values: no conflict, both own them
    owners = entries(shared)
    assert ("f:spec", "f:replicas") in mf.from_fields_v1(owners["other/Update"]["fieldsV1"])
    assert ("f:spec", "f:replicas") in mf.from_fields_v1(owners["mgr/Apply"]["fieldsV1"])
    forced = apply(shared, deployment(replicas=7), force=True)
    assert forced["spec"]["replicas"] == 7
    owners = entries(forced)
    assert ("f:spec", "f:replicas") not in mf.from_fields_v1(owners["other/Update"]["fieldsV1"])


def test_apply_removes_what_the_applier_stopped_applying_unless_co_owned() -> None:
    first = apply(None, deployment(tier="db"))
    later = deployment()
    del later["spec"]["template"]["spec"]["containers"][0]["ports"]
    second = apply(first, later, now="T2")
    assert second["metadata"]["labels"] == {"app": "web"}
    assert "ports" not in second["spec"]["template"]["spec"]["containers"][0]
    # a label another applier also applies stays when this one drops it
    both = apply(apply(None, deployment(tier="db")), deployment(tier="db"), manager="second")
    kept = apply(both, deployment(), now="T3")
    assert kept["metadata"]["labels"] == {"app": "web", "tier": "db"}


def test_apply_keeps_fields_others_set() -> None:
    live = apply(None, deployment())
    edited = copy.deepcopy(live)
    edited["metadata"]["labels"]["team"] = "a"
    edited["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "busybox"})
    edited = update(live, edited, "kubectl-edit")
    again = apply(edited, deployment(image="nginx"), now="T5")
    assert again["metadata"]["labels"]["team"] == "a"
    assert [c["name"] for c in again["spec"]["template"]["spec"]["containers"]] == ["c", "side"]
    assert again["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx"


def test_apply_unchanged_is_the_same_object() -> None:
    live = apply(None, deployment())
    assert apply(live, deployment(), now="T9") == live


def test_merge_orders_associative_lists_and_unions_sets() -> None:
    live = {
        "spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "x"}, {"name": "b"}]}}},
        "metadata": {"finalizers": ["f1"]},
    }
    config = {
        "spec": {"template": {"spec": {"containers": [{"name": "b", "image": "i"}, {"name": "a"}]}}},
        "metadata": {"finalizers": ["f2"]},
    }
    merged = mf.merge(live, config, "Deployment")
    assert [c["name"] for c in merged["spec"]["template"]["spec"]["containers"]] == ["x", "b", "a"]
    assert merged["metadata"]["finalizers"] == ["f1", "f2"]


def test_apply_on_an_object_without_managers_conflicts_with_before_first_apply() -> None:
    live = deployment()  # written by nobody the API knows (the in-process registry)
    with pytest.raises(mf.ApplyConflict, match='"before-first-apply" using apps/v1: .spec.replicas'):
        apply(live, deployment(replicas=4))
    owners = entries(apply(live, deployment(replicas=4), force=True))
    assert set(owners) == {"before-first-apply/Update", "mgr/Apply"}


def test_kubectl_apply_takes_over_fields_client_side_apply_left_alone() -> None:
    manifest = deployment()
    live = copy.deepcopy(manifest)
    live["metadata"]["annotations"] = {mf.LAST_APPLIED: json.dumps(manifest)}
    live = update(None, live, "kubectl-client-side-apply")
    result = apply(live, deployment(replicas=4), manager="kubectl")
    assert result["spec"]["replicas"] == 4
    assert json.loads(result["metadata"]["annotations"][mf.LAST_APPLIED])["spec"]["replicas"] == 4
    with pytest.raises(mf.ApplyConflict):  # another manager name gets no such allowance
        apply(live, deployment(replicas=4), manager="other")
    changed = copy.deepcopy(live)
    changed["spec"]["replicas"] = 9  # no longer what client-side apply last applied
    changed = update(live, changed, "kubectl-client-side-apply")
    with pytest.raises(mf.ApplyConflict):
        apply(changed, deployment(replicas=4), manager="kubectl")


def test_applied_configuration_must_key_its_list_items() -> None:
    config = deployment()
    del config["spec"]["template"]["spec"]["containers"][0]["name"]
    with pytest.raises(BadRequest, match=r"\.spec\.template\.spec\.containers: element 0: .*omits key field"):
        apply(None, config)
    dup = deployment()
    dup["spec"]["template"]["spec"]["containers"].append({"name": "c", "image": "x"})
    with pytest.raises(BadRequest, match=r'duplicate entries for key \[name="c"\]'):
        apply(None, dup)


def test_manager_names() -> None:
    assert mf.manager_from_user_agent("kubectl/v1.32.0 (linux/amd64) kubernetes/abc") == "kubectl"
    mf.validate_manager("kubectl-client-side-apply")
    with pytest.raises(BadRequest, match="Too long"):
        mf.validate_manager("m" * 129)


def test_apply_to_the_main_resource_leaves_status_alone() -> None:
    live = apply(None, deployment())
    live["status"] = {"replicas": 1}
    config = deployment()
    config["status"] = {"replicas": 9}
    again = apply(live, config, now="T7")
    assert again == live  # status is the status subresource's: nothing changed, nothing owned
