"""The RBAC authorizer: request attributes as kube-apiserver reads them, its decisions against a real
Registry (in-memory SQLite) fed through informers, and Kubernetes' forbidden messages verbatim."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from nbk_rbactest import Cluster, User, binding, can, role, rule, subject

from nbkube.apiserver.rbac import (
    Decision,
    NonResourceRule,
    RBACAuthorizer,
    RequestAttributes,
    ResourceRule,
    forbidden,
    forbidden_message,
    request_attributes,
    resource_verb,
)
from nbkube.errors import BadRequest
from nbkube.registry.registry import Registry

ALICE = User("alice")


@pytest.fixture
def cluster(registry: Registry) -> Iterator[Cluster]:
    c = Cluster(registry).start()
    yield c
    c.stop()


# --- request attributes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/bob/pods", {}, ("list", "", "pods", "", "", "bob")),
        ("GET", "/api/v1/namespaces/bob/pods", {"watch": "true"}, ("watch", "", "pods", "", "", "bob")),
        ("GET", "/api/v1/namespaces/bob/pods", {"watch": ["1"]}, ("watch", "", "pods", "", "", "bob")),
        ("GET", "/api/v1/namespaces/bob/pods", {"watch": "false"}, ("list", "", "pods", "", "", "bob")),
        ("GET", "/api/v1/namespaces/bob/pods", {"watch": "0"}, ("list", "", "pods", "", "", "bob")),
        ("HEAD", "/api/v1/namespaces/bob/pods/web", {}, ("get", "", "pods", "", "web", "bob")),
        ("GET", "/api/v1/namespaces/bob/pods/web/log", {}, ("get", "", "pods", "log", "web", "bob")),
        ("POST", "/api/v1/namespaces/bob/pods/web/exec", {}, ("create", "", "pods", "exec", "web", "bob")),
        ("POST", "/api/v1/namespaces/bob/pods", {}, ("create", "", "pods", "", "", "bob")),
        ("PUT", "/api/v1/namespaces/bob/pods/web", {}, ("update", "", "pods", "", "web", "bob")),
        (
            "PATCH",
            "/api/v1/namespaces/bob/pods/web/status",
            {},
            ("patch", "", "pods", "status", "web", "bob"),
        ),
        ("DELETE", "/api/v1/namespaces/bob/pods", {}, ("deletecollection", "", "pods", "", "", "bob")),
        ("DELETE", "/api/v1/namespaces/bob/pods/web", {}, ("delete", "", "pods", "", "web", "bob")),
        ("GET", "/api/v1/watch/namespaces/bob/pods", {}, ("watch", "", "pods", "", "", "bob")),
        ("GET", "/api/v1/watch/namespaces/bob/pods/web", {}, ("watch", "", "pods", "", "web", "bob")),
        ("GET", "/api/v1/proxy/namespaces/bob/pods/web/x/y", {}, ("proxy", "", "pods", "", "web", "bob")),
        (
            "PUT",
            "/apis/apps/v1/namespaces/bob/deployments/web/scale",
            {},
            ("update", "apps", "deployments", "scale", "web", "bob"),
        ),
        ("GET", "/api/v1/namespaces", {}, ("list", "", "namespaces", "", "", "")),
        ("GET", "/api/v1/namespaces/bob", {}, ("get", "", "namespaces", "", "bob", "bob")),
        (
            "PUT",
            "/api/v1/namespaces/bob/finalize",
            {},
            ("update", "", "namespaces", "finalize", "bob", "bob"),
        ),
        ("PUT", "/api/v1/namespaces/bob/status", {}, ("update", "", "namespaces", "status", "bob", "bob")),
        ("GET", "/api/v1/nodes", {}, ("list", "", "nodes", "", "", "")),
        ("GET", "/api/v1/pods", {"fieldSelector": "metadata.name=web"}, ("list", "", "pods", "", "web", "")),
        (
            "GET",
            "/api/v1/pods",
            {"watch": "1", "fieldSelector": "status.phase!=Failed,metadata.name==web"},
            ("watch", "", "pods", "", "web", ""),
        ),
        ("GET", "/api/v1/pods", {"fieldSelector": "metadata.name!=web"}, ("list", "", "pods", "", "", "")),
        (
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            {},
            ("create", "authorization.k8s.io", "selfsubjectaccessreviews", "", "", ""),
        ),
    ],
)
def test_resource_requests(method: str, path: str, query: dict[str, Any], expected: tuple[str, ...]) -> None:
    a = request_attributes(ALICE, method, path, query)
    assert a.is_resource_request and a.path == path
    assert (a.verb, a.api_group, a.resource, a.subresource, a.name, a.namespace) == expected


@pytest.mark.parametrize(
    ("method", "path", "verb"),
    [
        ("GET", "/healthz", "get"),
        ("GET", "/api", "get"),
        ("GET", "/api/v1", "get"),
        ("GET", "/apis/apps/v1", "get"),
        ("HEAD", "/version", "head"),
        ("POST", "/logs/x", "post"),
        ("GET", "/", "get"),
    ],
)
def test_non_resource_requests(method: str, path: str, verb: str) -> None:
    a = request_attributes(ALICE, method, path)
    assert (a.is_resource_request, a.verb, a.path, a.resource) == (False, verb, path, "")


def test_special_verb_without_a_resource_is_refused() -> None:
    with pytest.raises(BadRequest, match="unable to determine kind and namespace"):
        request_attributes(ALICE, "GET", "/api/v1/watch")


def test_query_as_multidict() -> None:
    class MultiDict:
        def getall(self, key: str, default: list[str]) -> list[str]:
            return {"watch": ["true", "false"]}.get(key, default)

    assert request_attributes(ALICE, "GET", "/api/v1/pods", MultiDict()).verb == "watch"


def test_resource_verb() -> None:
    assert resource_verb("GET", has_name=True) == "get"
    assert resource_verb("GET", has_name=False) == "list"
    assert resource_verb("GET", has_name=False, query={"watch": "true"}) == "watch"
    assert resource_verb("GET", has_name=False, query={"watch": ""}) == "watch"  # metav1: present = true
    assert resource_verb("DELETE", has_name=False) == "deletecollection"
    assert resource_verb("DELETE", has_name=True) == "delete"
    assert resource_verb("POST", has_name=False) == "create"
    assert resource_verb("PATCH", has_name=True) == "patch"
    assert resource_verb("PUT", has_name=True) == "update"
    assert resource_verb("OPTIONS", has_name=True) == ""


# --- forbidden messages -------------------------------------------------------------------------


def test_forbidden_messages_verbatim() -> None:
    a = request_attributes(ALICE, "GET", "/api/v1/namespaces/bob/pods")
    assert forbidden_message(a) == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "bob"'
    )
    a = request_attributes(ALICE, "POST", "/api/v1/namespaces/bob/pods/web/exec")
    assert forbidden_message(a) == (
        'pods "web" is forbidden: User "alice" cannot create resource "pods/exec" in API group "" '
        'in the namespace "bob"'
    )
    a = request_attributes(ALICE, "GET", "/api/v1/nodes")
    assert forbidden_message(a) == (
        'nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope'
    )
    a = request_attributes(ALICE, "GET", "/apis/apps/v1/namespaces/bob/deployments/web")
    assert forbidden_message(a) == (
        'deployments.apps "web" is forbidden: User "alice" cannot get resource "deployments" '
        'in API group "apps" in the namespace "bob"'
    )
    a = request_attributes(ALICE, "GET", "/metrics")
    assert forbidden_message(a) == 'forbidden: User "alice" cannot get path "/metrics"'
    a = request_attributes(User("system:anonymous", ("system:unauthenticated",)), "GET", "/<x>&")
    assert forbidden_message(a) == 'forbidden: User "system:anonymous" cannot get path "/&lt;x&gt;&amp;"'
    a = request_attributes(ALICE, "GET", "/api/v1/namespaces/bob/secrets")
    assert forbidden_message(a, 'RBAC: role.rbac.authorization.k8s.io "x" not found') == (
        'secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace '
        '"bob": RBAC: role.rbac.authorization.k8s.io "x" not found'
    )
    err = forbidden(a)
    assert err.code == 403 and str(err) == forbidden_message(a)


# --- decisions ----------------------------------------------------------------------------------


def test_role_binding_applies_only_in_its_namespace(cluster: Cluster) -> None:
    cluster.apply(
        role("pod-reader", "bob", rule("get list watch", "", "pods")),
        binding("read", "bob", "Role", "pod-reader", subject("User", "alice")),
    )
    authz = cluster.authz
    assert can(authz, ALICE, "list", "pods", "bob")
    assert not can(authz, ALICE, "create", "pods", "bob")
    assert not can(authz, ALICE, "list", "pods", "carol")
    assert not can(authz, ALICE, "list", "pods")  # all namespaces = cluster scope
    assert not can(authz, User("mallory"), "list", "pods", "bob")
    assert not can(authz, ALICE, "get", "pods", "bob", sub="log")  # pods does not cover pods/log
    decision = authz.authorize(RequestAttributes(ALICE, "get", "", "pods", "", "web", "bob"))
    assert decision.allowed
    assert decision.reason == 'RBAC: allowed by RoleBinding "read/bob" of Role "pod-reader" to User "alice"'


def test_role_binding_to_a_cluster_role(cluster: Cluster) -> None:
    cluster.apply(
        role("deployer", "", rule("*", "apps", "deployments */scale")),
        binding("deploy", "bob", "ClusterRole", "deployer", subject("Group", "devs")),
    )
    dev = User("dan", ("system:authenticated", "devs"))
    assert can(cluster.authz, dev, "patch", "deployments", "bob", group="apps")
    assert can(cluster.authz, dev, "update", "deployments", "bob", group="apps", sub="scale")
    assert can(cluster.authz, dev, "update", "replicasets", "bob", group="apps", sub="scale")  # */scale
    assert not can(cluster.authz, dev, "update", "replicasets", "bob", group="apps")
    assert not can(cluster.authz, dev, "patch", "deployments", "carol", group="apps")
    assert not can(cluster.authz, dev, "patch", "deployments", "bob")  # core group


def test_cluster_role_binding_applies_everywhere(cluster: Cluster) -> None:
    cluster.apply(
        role(
            "node-reader", "", rule("get list", "", "nodes namespaces"), rule("get", "", "configmaps", "cfg")
        ),
        binding("nodes", "", "ClusterRole", "node-reader", subject("User", "alice")),
    )
    assert can(cluster.authz, ALICE, "list", "nodes")
    assert can(cluster.authz, ALICE, "get", "namespaces", "bob", name="bob")
    assert can(cluster.authz, ALICE, "get", "configmaps", "any", name="cfg")
    assert not can(cluster.authz, ALICE, "get", "configmaps", "any", name="other")
    assert not can(cluster.authz, ALICE, "list", "configmaps", "any")  # resourceNames never cover a list


def test_service_account_subjects(cluster: Cluster) -> None:
    cluster.apply(
        role("cm", "ci", rule("create", "", "configmaps")),
        # a RoleBinding's service account without a namespace is the binding's own
        binding("sa", "ci", "Role", "cm", subject("ServiceAccount", "builder")),
        role("nodes", "", rule("list", "", "nodes")),
        binding("sa-nodes", "", "ClusterRole", "nodes", subject("ServiceAccount", "builder", "ci")),
    )
    sa = User("system:serviceaccount:ci:builder", ("system:serviceaccounts", "system:serviceaccounts:ci"))
    other = User("system:serviceaccount:prod:builder", ("system:serviceaccounts",))
    assert can(cluster.authz, sa, "create", "configmaps", "ci")
    assert can(cluster.authz, sa, "list", "nodes")
    assert not can(cluster.authz, other, "create", "configmaps", "prod")
    assert not can(cluster.authz, other, "list", "nodes")
    reason = cluster.authz.authorize(RequestAttributes(sa, "create", "", "configmaps", namespace="ci")).reason
    assert reason == 'RBAC: allowed by RoleBinding "sa/ci" of Role "cm" to ServiceAccount "builder/ci"'


def test_masters_are_always_allowed(cluster: Cluster) -> None:
    root = User("root", ("system:masters",))
    assert can(cluster.authz, root, "delete", "nodes", name="n1")
    assert cluster.authz.authorize(
        RequestAttributes(root, "get", path="/x", is_resource_request=False)
    ).allowed


def test_non_resource_urls(cluster: Cluster) -> None:
    cluster.apply(
        {
            **role("health", ""),
            "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]}],
        },
        binding("health", "", "ClusterRole", "health", subject("Group", "system:authenticated")),
        # a RoleBinding never grants non-resource URLs
        binding("health-bob", "bob", "ClusterRole", "health", subject("User", "eve")),
    )

    def get(user: User, path: str, verb: str = "get") -> bool:
        return cluster.authz.authorize(
            RequestAttributes(user, verb, path=path, is_resource_request=False)
        ).allowed

    assert get(ALICE, "/healthz") and get(ALICE, "/apis/apps/v1")
    assert not get(ALICE, "/healthz/etcd") and not get(ALICE, "/healthz", "post") and not get(ALICE, "/api")
    assert not get(User("eve", ()), "/healthz")


def test_missing_role_is_the_reason(cluster: Cluster) -> None:
    cluster.apply(binding("dangling", "bob", "Role", "nope", subject("User", "alice")))
    decision = cluster.authz.authorize(RequestAttributes(ALICE, "list", "", "pods", namespace="bob"))
    assert decision == Decision(False, 'RBAC: role.rbac.authorization.k8s.io "nope" not found')
    # created later, the role takes effect without touching the binding
    cluster.apply(role("nope", "bob", rule("list", "", "pods")))
    assert can(cluster.authz, ALICE, "list", "pods", "bob")


def test_changes_and_deletions_take_effect(cluster: Cluster) -> None:
    r, b = cluster.apply(
        role("r", "bob", rule("get", "", "pods")),
        binding("b", "bob", "Role", "r", subject("User", "alice"), subject("User", "carl")),
    )
    assert can(cluster.authz, ALICE, "get", "pods", "bob")
    r["rules"] = [rule("get", "", "services")]
    cluster.update(r)
    assert not can(cluster.authz, ALICE, "get", "pods", "bob")
    assert can(cluster.authz, ALICE, "get", "services", "bob")
    b["subjects"] = [subject("User", "carl")]
    cluster.update(b)
    assert not can(cluster.authz, ALICE, "get", "services", "bob")
    assert can(cluster.authz, User("carl"), "get", "services", "bob")
    cluster.remove(b)
    assert not can(cluster.authz, User("carl"), "get", "services", "bob")


def test_rules_for(cluster: Cluster) -> None:
    cluster.apply(
        role("r", "bob", rule("get list", "", "pods"), rule("get", "", "configmaps", "cfg")),
        binding("b", "bob", "Role", "r", subject("User", "alice")),
        {**role("health", ""), "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]},
        binding("h", "", "ClusterRole", "health", subject("Group", "system:authenticated")),
        binding("h2", "bob", "ClusterRole", "health", subject("User", "alice")),
    )
    resource, non_resource = cluster.authz.rules_for(ALICE, "bob")
    assert resource == [
        ResourceRule(("get", "list"), ("",), ("pods",)),
        ResourceRule(("get",), ("",), ("configmaps",), ("cfg",)),
    ]
    assert non_resource == [NonResourceRule(("get",), ("/healthz",))]
    assert resource[1].to_dict() == {
        "verbs": ["get"],
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["cfg"],
    }
    assert cluster.authz.rules_for(ALICE, "carol") == ([], non_resource)


def test_own_informers_start_and_stop(registry: Registry) -> None:
    registry.create(role("r", "", rule("list", "", "nodes")))
    registry.create(binding("b", "", "ClusterRole", "r", subject("User", "alice")))
    with RBACAuthorizer(registry) as authz:
        assert authz.wait_synced(10)
        assert can(authz, ALICE, "list", "nodes")
