"""The RBAC kinds through the real kubectl: `kubectl create role|clusterrole|rolebinding|
clusterrolebinding` (protobuf bodies), kubectl's columns, and validation errors as kubectl shows them."""

from __future__ import annotations

from nbk_apitest import Kubectl


def test_create_and_get_rbac_objects(kubectl: Kubectl) -> None:
    kubectl.ok("create", "namespace", "bob")
    kubectl.ok("create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", "bob")
    kubectl.ok("create", "clusterrole", "nodes", "--verb=get", "--resource=nodes")
    kubectl.ok(
        "create",
        "rolebinding",
        "rb",
        "--role=pod-reader",
        "--user=alice",
        "--serviceaccount=bob:ci",
        "-n",
        "bob",
    )
    kubectl.ok("create", "clusterrolebinding", "crb", "--clusterrole=nodes", "--group=devs")

    lines = [
        line.split() for line in kubectl.ok("get", "rolebindings", "-n", "bob", "-o", "wide").splitlines()
    ]
    assert lines[0] == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert lines[1][:2] == ["rb", "Role/pod-reader"] and lines[1][3:] == ["alice", "bob/ci"]
    lines = [line.split() for line in kubectl.ok("get", "clusterroles").splitlines()]
    names = [line[0] for line in lines[1:]]
    assert lines[0] == ["NAME", "CREATED", "AT"] and "nodes" in names  # beside the default roles
    assert {"cluster-admin", "admin", "edit", "view"} <= set(names)
    role = kubectl.ok("get", "role", "pod-reader", "-n", "bob", "-o", "jsonpath={.rules[0].verbs}")
    assert role == '["get","list"]'

    bad = kubectl("create", "role", "bad", "--verb=fly", "--resource=pods", "-n", "bob")
    assert bad.returncode != 0 and 'rules[0].verbs[0]: Unsupported value: "fly"' in bad.stderr
    moved = kubectl(
        "patch", "rolebinding", "rb", "-n", "bob", "--type=merge", "-p", '{"roleRef":{"name":"other"}}'
    )
    assert moved.returncode != 0 and "cannot change roleRef" in moved.stderr
