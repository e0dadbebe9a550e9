"""RBAC escalation prevention through the API server: a namespace admin (as a tenant is) cannot
grant what they do not hold, by a Role or a binding, created, replaced or patched; they can grant
what they hold, and `bind`/`escalate` lift the check as upstream."""

from __future__ import annotations

import time
from typing import Any

import pytest
from nbk_apitest import call
from nbk_rbactest import V1, binding, role, rule, subject

from nbkube.apiserver import ApiServer
from nbkube.registry.registry import Registry

NS = "alice"
RB = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings"
ROLES = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles"


def _admin_of_namespace(server: ApiServer, user: str = "alice") -> None:
    """`user` gets ClusterRole admin in NS (as `nbkube tenant create` binds it), and the
    authorizer has seen it."""
    assert (
        call(
            server,
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        )[0]
        == 201
    )
    made = call(
        server, "POST", RB, binding(f"{user}-admin", NS, "ClusterRole", "admin", subject("User", user))
    )
    assert made[0] == 201, made[1]
    _until_allowed(server, "GET", f"/api/v1/namespaces/{NS}/pods", user)


def _until_allowed(server: ApiServer, method: str, path: str, user: str) -> None:
    deadline = time.monotonic() + 10
    while call(server, method, path, user=user, groups=())[0] == 403:
        assert time.monotonic() < deadline, f"{user} still may not {method} {path}"
        time.sleep(0.05)


def _as(server: ApiServer, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
    code, answer, _headers = call(server, method, path, body, user="alice", groups=(), **kw)
    return code, answer


def test_a_namespace_admin_cannot_bind_cluster_admin_and_relabel_the_namespace(server: ApiServer) -> None:
    _admin_of_namespace(server)
    code, answer = _as(
        server, "POST", RB, binding("esc", NS, "ClusterRole", "cluster-admin", subject("User", "alice"))
    )
    assert code == 403, answer
    assert answer["reason"] == "Forbidden"
    assert answer["message"].startswith(
        'rolebindings.rbac.authorization.k8s.io "esc" is forbidden: user "alice" (groups=["system:authenticated"]) '
        "is attempting to grant RBAC permissions not currently held:\n"
    )
    assert '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}' in answer["message"]
    code, _ = _as(
        server,
        "PATCH",
        f"/api/v1/namespaces/{NS}",
        {"metadata": {"labels": {"x": "y"}}},
        content_type="application/merge-patch+json",
    )
    assert code == 403


def test_a_role_with_rules_not_held_is_refused_and_one_held_is_made(server: ApiServer) -> None:
    _admin_of_namespace(server)
    code, answer = _as(server, "POST", ROLES, role("ns-writer", NS, rule("patch", "", "namespaces")))
    assert code == 403
    assert answer["message"].endswith('{APIGroups:[""], Resources:["namespaces"], Verbs:["patch"]}')
    code, answer = _as(server, "POST", ROLES, role("pod-reader", NS, rule("get list", "", "pods pods/log")))
    assert code == 201, answer
    # widening it by a merge patch or a replacement is the same grant
    code, answer = _as(
        server,
        "PATCH",
        f"{ROLES}/pod-reader",
        {"rules": [rule("*", "*", "*")]},
        content_type="application/merge-patch+json",
    )
    assert code == 403, answer
    current = _as(server, "GET", f"{ROLES}/pod-reader")[1]
    current["rules"] = [rule("update", "", "resourcequotas")]
    assert _as(server, "PUT", f"{ROLES}/pod-reader", current)[0] == 403
    # a change that leaves the rules alone passes
    current["rules"] = [rule("get list", "", "pods pods/log")]
    current["metadata"]["labels"] = {"team": "a"}
    assert _as(server, "PUT", f"{ROLES}/pod-reader", current)[0] == 200


def test_binding_what_one_holds_works_and_a_missing_role_is_refused(server: ApiServer) -> None:
    _admin_of_namespace(server)
    code, answer = _as(
        server, "POST", RB, binding("bob-edit", NS, "ClusterRole", "edit", subject("User", "bob"))
    )
    assert code == 201, answer
    code, answer = _as(
        server, "POST", RB, binding("ghost", NS, "ClusterRole", "no-such-role", subject("User", "bob"))
    )
    assert code == 403
    assert 'clusterroles.rbac.authorization.k8s.io "no-such-role" not found' in answer["message"]
    # adding a subject to a binding of a role not held is a grant too
    call(server, "POST", RB, binding("root", NS, "ClusterRole", "cluster-admin", subject("User", "carol")))
    code, _ = _as(
        server,
        "PATCH",
        f"{RB}/root",
        {"subjects": [subject("User", "alice")]},
        content_type="application/merge-patch+json",
    )
    assert code == 403


def test_bind_and_escalate_verbs_lift_the_check(server: ApiServer, registry: Registry) -> None:
    _admin_of_namespace(server)
    grant = role(
        "grantor",
        NS,
        rule("bind", "rbac.authorization.k8s.io", "clusterroles", "cluster-admin"),
        rule("escalate", "rbac.authorization.k8s.io", "roles"),
    )
    assert call(server, "POST", ROLES, grant)[0] == 201
    assert (
        call(server, "POST", RB, binding("grantor", NS, "Role", "grantor", subject("User", "alice")))[0]
        == 201
    )
    deadline = time.monotonic() + 10
    while True:
        code, answer = _as(server, "POST", ROLES, role("wide", NS, rule("*", "*", "*")))
        if code == 201 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert code == 201, answer
    code, answer = _as(
        server, "POST", RB, binding("esc", NS, "ClusterRole", "cluster-admin", subject("User", "alice"))
    )
    assert code == 201, answer
    assert registry.get("RoleBinding", "esc", NS)["roleRef"]["name"] == "cluster-admin"


@pytest.mark.parametrize("kind", ["ClusterRole", "ClusterRoleBinding"])
def test_the_admin_is_not_checked(server: ApiServer, kind: str) -> None:
    obj = (
        role("everything", "", rule("*", "*", "*"))
        if kind == "ClusterRole"
        else binding("everyone", "", "ClusterRole", "cluster-admin", subject("User", "zed"))
    )
    plural = "clusterroles" if kind == "ClusterRole" else "clusterrolebindings"
    code, answer, _ = call(server, "POST", f"/apis/{V1}/{plural}", obj)
    assert code == 201, answer
