"""`kubectl --as`: requests served as the impersonated user once RBAC allows `impersonate`."""

from __future__ import annotations

import http.client
import json
from typing import Any

from nbk_apitest import Kubectl, connect

from nbkube.apiserver import ApiServer
from nbkube.registry.registry import Registry

RBAC = "rbac.authorization.k8s.io"


def _get(server: ApiServer, path: str, user: str, groups: tuple[str, ...], headers: list[tuple[str, str]]) -> tuple[int, Any]:
    conn: http.client.HTTPSConnection = connect(server, user, groups)
    try:
        conn.putrequest("GET", path)
        for k, v in headers:
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def _bind(registry: Registry, name: str, role: str, user: str, namespace: str = "") -> None:
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    registry.create(
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": kind,
            "metadata": meta,
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "User", "apiGroup": RBAC, "name": user}],
        }
    )


def test_impersonation_needs_the_impersonate_verb_and_then_acts_as_that_user(
    server: ApiServer, registry: Registry
) -> None:
    import time

    _bind(registry, "bob-view", "view", "bob", "default")
    registry.create(
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "impersonator"},
            "rules": [{"apiGroups": [""], "resources": ["users", "groups"], "verbs": ["impersonate"]}],
        }
    )
    _bind(registry, "carol-imp", "impersonator", "carol")
    time.sleep(0.5)  # the RBAC cache follows the store by watch
    as_bob = [("Impersonate-User", "bob")]
    code, body = _get(server, "/api/v1/namespaces/default/pods", "alice", (), as_bob)
    assert code == 403 and body["message"].startswith('users "bob" is forbidden: User "alice" cannot impersonate')
    code, _ = _get(server, "/api/v1/namespaces/default/pods", "carol", (), as_bob)
    assert code == 200  # carol as bob may list pods in default (view)
    code, body = _get(server, "/api/v1/namespaces/other/pods", "carol", (), as_bob)
    assert code == 403 and 'User "bob"' in body["message"]  # judged as bob, not as carol
    code, body = _get(server, "/api/v1/namespaces/default/pods", "carol", (), [("Impersonate-Group", "x")])
    assert code == 400
    code, body = _get(server, "/api/v1/namespaces/default/pods", "carol", (), [*as_bob, ("Impersonate-Extra-Scopes", "a")])
    assert code == 400 and "not supported" in body["message"]


def test_kubectl_auth_can_i_as_a_service_account(kubectl: Kubectl, registry: Registry) -> None:
    import time

    registry.create(
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "Role",
            "metadata": {"name": "pod-reader", "namespace": "default"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        }
    )
    registry.create(
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "robot-reads", "namespace": "default"},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "default"}],
        }
    )
    time.sleep(0.5)
    sa = "system:serviceaccount:default:robot"
    assert kubectl("auth", "can-i", "get", "pods", f"--as={sa}").stdout.strip() == "yes"
    denied = kubectl("auth", "can-i", "delete", "pods", f"--as={sa}")
    assert denied.returncode == 1 and denied.stdout.strip() == "no"
