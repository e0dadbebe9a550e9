"""The RBAC kinds: kind table, validation as upstream's, defaulting, unknown fields and printer columns."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nbkube.api import kinds
from nbkube.api.defaults import apply_defaults
from nbkube.api.fieldnames import unknown_fields
from nbkube.api.printers import table_rows
from nbkube.api.validation import validate, validate_update

G = "rbac.authorization.k8s.io"
V = f"{G}/v1"


def role(kind: str = "Role", rules: Any = None, **rest: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "r"}
    if kind == "Role":
        meta["namespace"] = "team"
    obj = {"apiVersion": V, "kind": kind, "metadata": meta, **rest}
    obj["rules"] = (
        rules if rules is not None else [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]
    )
    return obj


def binding(kind: str = "RoleBinding", subjects: Any = None, ref: Any = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "b"}
    if kind == "RoleBinding":
        meta["namespace"] = "team"
    return {
        "apiVersion": V,
        "kind": kind,
        "metadata": meta,
        "roleRef": ref if ref is not None else {"apiGroup": G, "kind": "ClusterRole", "name": "edit"},
        "subjects": subjects if subjects is not None else [{"kind": "User", "apiGroup": G, "name": "alice"}],
    }


def errors(obj: dict[str, Any]) -> dict[str, str]:
    return {e.path: e.message for e in validate(obj)}


def test_kind_table() -> None:
    for name, plural, namespaced in (
        ("Role", "roles", True),
        ("ClusterRole", "clusterroles", False),
        ("RoleBinding", "rolebindings", True),
        ("ClusterRoleBinding", "clusterrolebindings", False),
    ):
        info = kinds.lookup(name)
        assert (info.plural, info.namespaced, info.group, info.has_status) == (plural, namespaced, G, False)
        assert kinds.lookup(f"{plural}.{G}") is info


def test_valid_objects() -> None:
    assert errors(role()) == {}
    assert errors(role("ClusterRole", [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/api/*"]}])) == {}
    assert errors(binding()) == {}
    sa = {"kind": "ServiceAccount", "name": "builder", "namespace": "ci"}
    assert errors(binding("ClusterRoleBinding", [sa])) == {}
    # RBAC names are path segments, so the system roles' colons are fine
    named = role("ClusterRole")
    named["metadata"]["name"] = "system:node:web-1"
    assert errors(named) == {}


def test_rules_need_verbs_from_the_known_set() -> None:
    found = errors(role(rules=[{"verbs": [], "apiGroups": [""], "resources": ["pods"]}]))
    assert list(found) == ["rules[0].verbs"]
    found = errors(role(rules=[{"verbs": ["get", "fly"], "apiGroups": [""], "resources": ["pods"]}]))
    assert list(found) == ["rules[0].verbs[1]"]
    assert found["rules[0].verbs[1]"].startswith('Unsupported value: "fly": supported values: "get"')


def test_resource_rules_need_groups_and_resources() -> None:
    assert set(errors(role(rules=[{"verbs": ["get"]}]))) == {"rules[0].apiGroups", "rules[0].resources"}


def test_non_resource_urls_only_in_cluster_roles_and_alone() -> None:
    found = errors(role(rules=[{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]))
    assert "namespaced rules cannot apply to non-resource URLs" in found["rules[0].nonResourceURLs"]
    mixed = [{"verbs": ["get"], "nonResourceURLs": ["/healthz"], "resources": ["pods"], "apiGroups": [""]}]
    found = errors(role("ClusterRole", mixed))
    assert "both regular resources and non-resource URLs" in found["rules[0].nonResourceURLs"]


def test_aggregation_is_refused_rather_than_ignored() -> None:
    obj = role("ClusterRole", aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]})
    assert list(errors(obj)) == ["aggregationRule"]


def test_role_ref() -> None:
    assert set(errors(binding(ref={}))) == {"roleRef.apiGroup", "roleRef.kind", "roleRef.name"}
    found = errors(binding(ref={"apiGroup": "rbac", "kind": "Pod", "name": "x"}))
    assert set(found) == {"roleRef.apiGroup", "roleRef.kind"}
    assert '"Role", "ClusterRole"' in found["roleRef.kind"]
    # a ClusterRoleBinding may only reference a ClusterRole
    found = errors(binding("ClusterRoleBinding", ref={"apiGroup": G, "kind": "Role", "name": "x"}))
    assert list(found) == ["roleRef.kind"]
    missing = binding()
    del missing["roleRef"]
    assert list(errors(missing)) == ["roleRef"]


def test_subjects() -> None:
    found = errors(binding(subjects=[{"kind": "Robot", "name": "r2"}, {"kind": "User", "apiGroup": G}]))
    assert set(found) == {"subjects[0].kind", "subjects[1].name"}
    found = errors(binding(subjects=[{"kind": "ServiceAccount", "name": "Bad_Name", "apiGroup": G}]))
    assert set(found) == {"subjects[0].name", "subjects[0].apiGroup"}
    found = errors(binding("ClusterRoleBinding", [{"kind": "ServiceAccount", "name": "builder"}]))
    assert list(found) == ["subjects[0].namespace"]
    # in a RoleBinding the namespace may be left out: it is the binding's own
    assert errors(binding(subjects=[{"kind": "ServiceAccount", "name": "builder"}])) == {}


def test_defaults() -> None:
    obj = binding(subjects=[{"kind": "User", "name": "a"}, {"kind": "ServiceAccount", "name": "builder"}])
    apply_defaults(obj)
    assert obj["subjects"] == [
        {"kind": "User", "name": "a", "apiGroup": G},
        {"kind": "ServiceAccount", "name": "builder", "namespace": "team"},
    ]
    crb = apply_defaults(binding("ClusterRoleBinding", [{"kind": "Group", "name": "devs"}]))
    assert crb["subjects"] == [{"kind": "Group", "name": "devs", "apiGroup": G}]


def test_role_ref_is_immutable() -> None:
    old = binding()
    new = copy.deepcopy(old)
    new["subjects"].append({"kind": "Group", "apiGroup": G, "name": "devs"})
    assert validate_update(new, old) == []
    new["roleRef"]["name"] = "admin"
    found = validate_update(new, old)
    assert [e.path for e in found] == ["roleRef"] and "cannot change roleRef" in found[0].message


def test_unknown_fields() -> None:
    obj = role(rules=[{"verbs": ["get"], "apiGroup": [""], "resources": ["pods"]}])
    assert [(e.path, e.message) for e in unknown_fields(obj)] == [
        ("rules[0].apiGroup", 'unknown field (did you mean "apiGroups"?)')
    ]
    obj = binding(subjects=[{"kind": "User", "name": "a", "namespce": "x"}])
    assert [e.path for e in unknown_fields(obj)] == ["subjects[0].namespce"]


def test_printer_columns() -> None:
    now = 1_700_000_000.0
    r = role("ClusterRole")
    r["metadata"]["creationTimestamp"] = "2023-11-14T22:11:40Z"
    assert table_rows("ClusterRole", [r], now=now) == (
        ["NAME", "CREATED AT"],
        [["r", "2023-11-14T22:11:40Z"]],
    )
    b = binding(
        subjects=[
            {"kind": "User", "name": "alice"},
            {"kind": "User", "name": "bob"},
            {"kind": "ServiceAccount", "name": "ci", "namespace": "team"},
        ]
    )
    b["metadata"]["creationTimestamp"] = "2023-11-14T22:11:40Z"
    assert table_rows("RoleBinding", [b], now=now) == (
        ["NAME", "ROLE", "AGE"],
        [["b", "ClusterRole/edit", "100s"]],
    )
    headers, rows = table_rows("rolebindings", [b], wide=True, now=now)
    assert headers == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert rows == [["b", "ClusterRole/edit", "100s", "alice, bob", "", "team/ci"]]


@pytest.mark.parametrize("kind", ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"])
def test_not_a_list_is_a_field_error(kind: str) -> None:
    obj = role(kind) if kind.endswith("Role") else binding(kind)
    key = "rules" if kind.endswith("Role") else "subjects"
    obj[key] = "everything"
    assert list(errors(obj)) == [key]
