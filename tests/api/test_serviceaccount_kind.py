"""The ServiceAccount kind (names, validation, strict fields, printing) and the Pod default that
makes every pod run as one."""

from __future__ import annotations

import copy
from typing import Any

from nbkube.api import kinds
from nbkube.api.defaults import apply_defaults
from nbkube.api.fieldnames import unknown_fields
from nbkube.api.printers import table_rows
from nbkube.api.validation import validate, validate_update


def sa(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder"}, **fields}


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "image": "busybox"}], **spec},
    }


def test_names() -> None:
    for word in ("sa", "serviceaccounts", "ServiceAccount", "serviceaccount"):
        info = kinds.lookup(word)
        assert (info.kind, info.api_version, info.plural, info.namespaced, info.has_status) == (
            "ServiceAccount",
            "v1",
            "serviceaccounts",
            True,
            False,
        )


def test_valid_service_account() -> None:
    obj = apply_defaults(
        sa(
            secrets=[{"name": "builder-token"}],
            imagePullSecrets=[{"name": "regcred"}],
            automountServiceAccountToken=False,
        )
    )
    assert obj["metadata"]["namespace"] == "default"
    assert validate(obj) == []


def test_invalid_service_account() -> None:
    obj = apply_defaults(
        sa(
            secrets=[{"name": "Bad_Name"}, "x"],
            imagePullSecrets=[{"name": 5}],
            automountServiceAccountToken="yes",
        )
    )
    messages = [str(e) for e in validate(obj)]
    assert any(m.startswith('secrets[0].name: Invalid value: "Bad_Name"') for m in messages), messages
    assert 'secrets[1]: must be a mapping, got string "x"' in messages
    assert any(m.startswith("imagePullSecrets[0].name: must be a string") for m in messages), messages
    assert any(m.startswith("automountServiceAccountToken: must be a boolean") for m in messages), messages
    bad_name = apply_defaults(sa())
    bad_name["metadata"]["name"] = "Builder"
    assert [e.path for e in validate(bad_name)] == ["metadata.name"]


def test_unknown_fields() -> None:
    obj = sa(secret=[], imagePullSecrets=[{"name": "r", "nmae": "x"}], secrets=[{"name": "t", "kinds": "S"}])
    assert sorted(str(e) for e in unknown_fields(obj)) == [
        'imagePullSecrets[0].nmae: unknown field (did you mean "name"?)',
        'secret: unknown field (did you mean "secrets"?)',
        'secrets[0].kinds: unknown field (did you mean "kind"?)',
    ]


def test_printed_like_kubectl() -> None:
    obj = sa(secrets=[{"name": "a"}, {"name": "b"}])
    obj["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z"
    headers, rows = table_rows("sa", [obj], now=1704067200.0 + 120)
    assert headers == ["NAME", "SECRETS", "AGE"]
    assert rows == [["builder", "2", "2m"]]


def test_pod_runs_as_default_service_account() -> None:
    spec = apply_defaults(pod())["spec"]
    assert (spec["serviceAccountName"], spec["serviceAccount"]) == ("default", "default")


def test_pod_service_account_spellings() -> None:
    named = apply_defaults(pod(serviceAccountName="builder"))["spec"]
    assert (named["serviceAccountName"], named["serviceAccount"]) == ("builder", "builder")
    deprecated = apply_defaults(pod(serviceAccount="legacy"))["spec"]
    assert (deprecated["serviceAccountName"], deprecated["serviceAccount"]) == ("legacy", "legacy")
    both = apply_defaults(pod(serviceAccountName="new", serviceAccount="old"))["spec"]
    assert (both["serviceAccountName"], both["serviceAccount"]) == ("new", "new")
    once = apply_defaults(pod())
    assert apply_defaults(copy.deepcopy(once)) == once


def test_wrong_type_left_for_validation() -> None:
    obj = apply_defaults(pod(serviceAccountName=5))
    assert obj["spec"]["serviceAccountName"] == 5
    assert [e.path for e in validate(obj)] == ["spec.serviceAccountName"]


def test_templates_are_not_given_a_service_account() -> None:
    rc = apply_defaults(
        {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"name": "r"},
            "spec": {
                "template": {
                    "metadata": {"labels": {"app": "a"}},
                    "spec": {"containers": [{"name": "a", "image": "busybox"}]},
                }
            },
        }
    )
    assert "serviceAccountName" not in rc["spec"]["template"]["spec"]


def test_update_of_pod_stored_before_the_default() -> None:
    old = apply_defaults(pod())
    del old["spec"]["serviceAccountName"], old["spec"]["serviceAccount"]
    new = apply_defaults(copy.deepcopy(old))
    assert validate_update(new, old) == []
    other = copy.deepcopy(new)
    other["spec"]["serviceAccountName"] = other["spec"]["serviceAccount"] = "builder"
    assert [e.path for e in validate_update(other, old)] == ["spec"]
