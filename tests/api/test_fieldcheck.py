"""The typed field getters: integer fields take the Go type Kubernetes gives them (int32 or int64
range, no floats, no bools); string fields take strings, one by one or a tuple of keys at once."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from nbkube.api.defaults import apply_defaults
from nbkube.api.fieldcheck import INT32_MAX, INT64_MAX, Errors
from nbkube.api.validation import validate

Obj = dict[str, Any]


def replica_set(replicas: Any) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "busybox"}]},
            },
        },
    }


def messages(obj: Obj) -> list[str]:
    return [str(e) for e in validate(apply_defaults(copy.deepcopy(obj)))]


@pytest.mark.parametrize("value", [INT32_MAX + 1, 99999999999999999999999, -(2**31) - 1])
def test_replicas_beyond_int32_are_refused(value: int) -> None:
    errs = messages(replica_set(value))
    assert len(errs) == 1
    assert errs[0].startswith("spec.replicas: Invalid value")
    assert "32-bit integer" in errs[0] or "greater than or equal to 0" in errs[0]


def test_largest_int32_replicas_is_accepted() -> None:
    assert messages(replica_set(INT32_MAX)) == []


@pytest.mark.parametrize("value", [3.0, 3.5, 1.18e21, True, "3"])
def test_replicas_that_are_not_integers_are_refused(value: Any) -> None:
    # the API's JSON decoder refuses 3.0 for an int32 as Go's does (kubectl's YAML path sends 3)
    kind = {bool: "boolean", float: "number", str: "string"}[type(value)]
    assert messages(replica_set(value)) == [
        f"spec.replicas: must be an integer, got {kind} {json.dumps(value)}"
    ]


def test_int64_fields_take_int64_but_not_more() -> None:
    pod: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}], "activeDeadlineSeconds": INT64_MAX},
    }
    assert messages(pod) == []
    pod["spec"]["activeDeadlineSeconds"] = INT64_MAX + 1
    assert messages(pod) == [
        f"spec.activeDeadlineSeconds: Invalid value: {INT64_MAX + 1}: must be a 64-bit integer "
        f"(between {-(2**63)} and {INT64_MAX})"
    ]


def test_an_integer_beyond_int64_in_an_open_shape_is_refused() -> None:
    pod: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {
            "containers": [{"name": "app", "image": "busybox"}],
            "securityContext": {"runAsUser": 2**70},
        },
    }
    errs = messages(pod)
    assert len(errs) == 1 and errs[0].startswith("spec.securityContext.runAsUser: Invalid value")


@pytest.mark.parametrize(
    ("spec_field", "value"),
    [("containerPort", INT32_MAX + 5), ("hostPort", 2**40)],
)
def test_ports_out_of_int32(spec_field: str, value: int) -> None:
    pod: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "busybox", "ports": [{"containerPort": 80}]}]},
    }
    pod["spec"]["containers"][0]["ports"][0][spec_field] = value
    errs = messages(pod)
    assert errs and all(f"spec.containers[0].ports[0].{spec_field}" in e for e in errs)


def test_status_counts_are_int32() -> None:
    rs = replica_set(1)
    rs["status"] = {"replicas": 1.18e21}
    assert messages(rs) == ["status.replicas: must be an integer, got number 1.18e+21"]
    rs["status"] = {"replicas": INT32_MAX + 1}
    assert len(messages(rs)) == 1


def test_max_surge_int_is_int32() -> None:
    d = replica_set(1)
    d["kind"] = "Deployment"
    d["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": INT32_MAX + 1}}
    errs = messages(d)
    assert errs == [
        f"spec.strategy.rollingUpdate.maxSurge: Invalid value: {INT32_MAX + 1}: "
        f"must be less than or equal to {INT32_MAX}"
    ]


def test_getter_returns_none_and_records_one_error() -> None:
    e = Errors()
    assert e.int32({"n": 2**31}, "n", "spec") is None
    assert e.integer({"n": 2**31}, "n", "spec") == 2**31
    assert [str(x) for x in e] == [
        "spec.n: Invalid value: 2147483648: must be a 32-bit integer (between -2147483648 and 2147483647)"
    ]


def test_the_quick_int64_walk_agrees_with_the_exact_one_and_defers_on_unknown_types() -> None:
    from nbkube.api.fieldcheck import ints_fit_int64

    fine = {"a": [True, None, 1.5, -(2**63), {"b": INT64_MAX}], "s": "x"}
    assert ints_fit_int64(fine)
    assert not ints_fit_int64({"a": [1, {"b": INT64_MAX + 1}]})
    assert not ints_fit_int64([-(2**63) - 1])

    class Small(int):
        pass

    # not a JSON type: the quick walk says no, and the exact walk decides
    assert not ints_fit_int64({"a": Small(3)})
    assert not ints_fit_int64({"a": (1, 2)})


def test_optional_strings_reports_what_string_would_for_each_key() -> None:
    class Name(str):
        pass

    parent = {"a": "x", "b": None, "c": 3, "d": Name("y"), "e": ["z"]}
    keys = ("a", "b", "c", "d", "e", "missing")
    one_by_one = Errors()
    for key in keys:
        one_by_one.string(parent, key, "spec")
    batched = Errors()
    batched.optional_strings(parent, keys, "spec")
    assert [str(x) for x in batched] == [str(x) for x in one_by_one]
    assert [x.path for x in batched] == ["spec.c", "spec.e"]


def test_an_event_with_a_mistyped_string_field_names_it() -> None:
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web.1", "namespace": "default", "uid": 7},
        "involvedObject": {"kind": "Pod", "name": ["web"]},
        "reason": "Started",
        "message": {"text": "hi"},
        "type": "Normal",
    }
    assert sorted(x.path for x in validate(event)) == ["involvedObject.name", "message", "metadata.uid"]
