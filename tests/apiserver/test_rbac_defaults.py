"""The default roles: reconciled idempotently as kube-apiserver's bootstrap policy, and what each
grants once bound (view cannot read secrets, edit cannot touch roles, admin can bind in its
namespace, nobody but system:masters at cluster scope)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from nbk_rbactest import Cluster, User, binding, can, subject

from nbkube.apiserver.rbac import RequestAttributes
from nbkube.apiserver.rbac_defaults import (
    AUTOUPDATE,
    default_cluster_role_bindings,
    default_cluster_roles,
    ensure_default_roles,
)
from nbkube.registry.registry import Registry


@pytest.fixture
def cluster(registry: Registry) -> Iterator[Cluster]:
    c = Cluster(registry).start()
    written = ensure_default_roles(registry)
    # wait until the authorizer has every default object
    for obj in [*default_cluster_roles(), *default_cluster_role_bindings()]:
        current = registry.get(obj["kind"], obj["metadata"]["name"])
        c.wait_for_version(current, current["metadata"]["resourceVersion"])
    assert len(written) == len(default_cluster_roles()) + len(default_cluster_role_bindings())
    yield c
    c.stop()


def _bound(cluster: Cluster, role_name: str, user: str = "u", namespace: str = "team") -> User:
    cluster.apply(binding(f"{user}-{role_name}", namespace, "ClusterRole", role_name, subject("User", user)))
    return User(user)


def test_reconcile_is_idempotent_and_repairs(registry: Registry) -> None:
    first = ensure_default_roles(registry)
    assert ("ClusterRole", "cluster-admin", "created") in first
    assert ("ClusterRoleBinding", "cluster-admin", "created") in first
    assert ensure_default_roles(registry) == []
    binding_ = registry.get("ClusterRoleBinding", "cluster-admin")
    assert binding_["subjects"] == [
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:masters"}
    ]
    assert binding_["metadata"]["annotations"][AUTOUPDATE] == "true"

    # a rule taken away is put back; a rule an administrator added stays
    edit = registry.get("ClusterRole", "edit")
    removed = edit["rules"].pop()
    extra = {"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["widgets"]}
    edit["rules"].append(extra)
    registry.update(edit)
    assert ensure_default_roles(registry) == [("ClusterRole", "edit", "updated")]
    rules = registry.get("ClusterRole", "edit")["rules"]
    assert removed in rules and extra in rules
    assert ensure_default_roles(registry) == []

    # autoupdate "false": the administrator owns it
    view = registry.get("ClusterRole", "view")
    view["metadata"]["annotations"][AUTOUPDATE] = "false"
    view["rules"] = view["rules"][:1]
    registry.update(view)
    assert ensure_default_roles(registry) == []
    assert len(registry.get("ClusterRole", "view")["rules"]) == 1

    # a binding pointing at another role is recreated (roleRef is immutable), subjects kept
    registry.delete("ClusterRoleBinding", "system:node")
    registry.create(
        {
            **binding("system:node", "", "ClusterRole", "view", subject("User", "kept")),
            "metadata": {"name": "system:node"},
        }
    )
    assert ensure_default_roles(registry) == [("ClusterRoleBinding", "system:node", "recreated")]
    node = registry.get("ClusterRoleBinding", "system:node")
    assert node["roleRef"]["name"] == "system:node"
    assert [s["name"] for s in node["subjects"]] == ["kept", "system:nodes"]


def test_view_reads_but_not_secrets(cluster: Cluster) -> None:
    u = _bound(cluster, "view")
    a = cluster.authz
    assert can(a, u, "list", "pods", "team") and can(a, u, "get", "pods", "team", sub="log")
    assert can(a, u, "watch", "deployments", "team", group="apps")
    assert not can(a, u, "get", "secrets", "team", name="s")
    assert not can(a, u, "list", "secrets", "team")
    assert not can(a, u, "create", "pods", "team")
    assert not can(a, u, "create", "pods", "team", sub="exec")


def test_edit_writes_workloads_but_not_roles(cluster: Cluster) -> None:
    u = _bound(cluster, "edit")
    a = cluster.authz
    assert can(a, u, "create", "pods", "team") and can(a, u, "create", "pods", "team", sub="exec")
    assert can(a, u, "get", "secrets", "team") and can(a, u, "delete", "secrets", "team")
    assert can(a, u, "update", "deployments", "team", group="apps", sub="scale")
    assert can(a, u, "create", "serviceaccounts", "team", sub="token")
    assert can(a, u, "create", "jobs", "team", group="batch")
    assert not can(a, u, "create", "roles", "team", group="rbac.authorization.k8s.io")
    assert not can(a, u, "create", "rolebindings", "team", group="rbac.authorization.k8s.io")
    assert not can(a, u, "create", "pods", "other")


def test_admin_binds_in_its_namespace(cluster: Cluster) -> None:
    u = _bound(cluster, "admin")
    a = cluster.authz
    assert can(a, u, "create", "rolebindings", "team", group="rbac.authorization.k8s.io")
    assert can(a, u, "delete", "roles", "team", group="rbac.authorization.k8s.io", name="r")
    assert not can(a, u, "create", "rolebindings", "other", group="rbac.authorization.k8s.io")
    assert not can(a, u, "create", "clusterrolebindings", group="rbac.authorization.k8s.io")


def test_nobody_but_masters_at_cluster_scope(cluster: Cluster) -> None:
    users = [_bound(cluster, name, user=f"u-{name}") for name in ("view", "edit", "admin")]
    users.append(User("plain"))
    for u in users:
        for resource in ("nodes", "namespaces", "pods", "clusterroles", "secrets"):
            group = "rbac.authorization.k8s.io" if resource == "clusterroles" else ""
            assert not can(cluster.authz, u, "list", resource, group=group), (u, resource)
        assert not can(cluster.authz, u, "create", "namespaces")
    root = User("root", ("system:masters", "system:authenticated"))
    assert can(cluster.authz, root, "list", "nodes") and can(cluster.authz, root, "create", "namespaces")
    # also without the privileged-group shortcut, through the cluster-admin binding
    assert cluster.authz.rules_for(root, "team")[0][0].to_dict() == {
        "verbs": ["*"],
        "apiGroups": ["*"],
        "resources": ["*"],
    }


def test_authenticated_and_anonymous_users(cluster: Cluster) -> None:
    a = cluster.authz

    def get(user: User, path: str) -> bool:
        return a.authorize(RequestAttributes(user, "get", path=path, is_resource_request=False)).allowed

    plain = User("plain")
    anonymous = User("system:anonymous", ("system:unauthenticated",))
    assert (
        get(plain, "/apis/apps/v1")
        and get(plain, "/api")
        and get(plain, "/openapi/v3")
        and get(plain, "/version")
    )
    assert get(anonymous, "/healthz") and get(anonymous, "/version")
    assert not get(anonymous, "/api") and not get(anonymous, "/apis")
    assert not get(plain, "/metrics")
    sar = "selfsubjectaccessreviews"
    assert can(a, plain, "create", sar, group="authorization.k8s.io")
    assert not can(a, anonymous, "create", sar, group="authorization.k8s.io")


def test_nodes(cluster: Cluster) -> None:
    node = User("system:node:n1", ("system:nodes", "system:authenticated"))
    a = cluster.authz
    assert can(a, node, "update", "nodes", sub="status", name="n1")
    assert can(a, node, "patch", "pods", "team", sub="status", name="p")
    assert can(a, node, "update", "leases", "kube-node-lease", group="coordination.k8s.io", name="n1")
    assert can(a, node, "watch", "networkpolicies", group="networking.k8s.io")
    assert not can(a, node, "update", "pods", "team", name="p")
    assert not can(a, node, "delete", "nodes", name="n2")
    assert not can(a, node, "create", "deployments", "team", group="apps")
