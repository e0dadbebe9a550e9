"""NodeRestriction: a node writes only its own Node and Lease and the status of pods bound to it."""

from __future__ import annotations

from typing import Any

import pytest
from nbk_rbactest import User

from nbkube.apiserver.noderestriction import node_name_of, node_restriction
from nbkube.errors import Forbidden

N1 = User("system:node:n1", ("system:nodes", "system:authenticated"))


def node(name: str, taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {"taints": taints or []}}


def pod(name: str, on: str, **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "team", "annotations": annotations}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"nodeName": on}}


def lease(name: str, namespace: str = "kube-node-lease") -> dict[str, Any]:
    return {"kind": "Lease", "metadata": {"name": name, "namespace": namespace}, "spec": {}}


def refused(*args: Any, **kw: Any) -> str:
    with pytest.raises(Forbidden) as err:
        node_restriction(*args, **kw)
    return str(err.value)


def test_who_is_a_node() -> None:
    assert node_name_of(N1) == "n1"
    assert node_name_of(User("system:node:n1", ("system:authenticated",))) == ""  # not in system:nodes
    assert node_name_of(User("alice", ("system:nodes",))) == ""


def test_own_node_only() -> None:
    node_restriction(N1, "create", "Node", node("n1"), None)
    node_restriction(N1, "update", "Node", node("n1"), node("n1"), "status")
    node_restriction(N1, "patch", "Node", node("n1"), node("n1"))
    assert refused(N1, "update", "Node", node("n2"), node("n2")) == (
        'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"'
    )
    assert "is not allowed to modify node" in refused(N1, "delete", "Node", None, node("n2"))
    tainted = node("n1", [{"key": "k", "effect": "NoSchedule"}])
    assert refused(N1, "update", "Node", tainted, node("n1")) == (
        'nodes "n1" is forbidden: node "n1" is not allowed to modify taints'
    )


def test_own_lease_only() -> None:
    node_restriction(N1, "update", "Lease", lease("n1"), lease("n1"))
    node_restriction(N1, "create", "Lease", lease("n1"), None)
    assert refused(N1, "update", "Lease", lease("n2"), lease("n2")) == (
        'leases.coordination.k8s.io "n2" is forbidden: '
        "can only access node lease with the same name as the requesting node"
    )
    assert refused(N1, "create", "Lease", lease("n1", "default"), None) == (
        'leases.coordination.k8s.io "n1" is forbidden: can only access leases in the "kube-node-lease" namespace'
    )


def test_pod_status_of_its_own_pods_only() -> None:
    node_restriction(N1, "update", "Pod", pod("web", "n1"), pod("web", "n1"), "status")
    node_restriction(N1, "patch", "Pod", pod("web", "n1"), pod("web", "n1"), "status")
    assert refused(N1, "update", "Pod", pod("web", "n2"), pod("web", "n2"), subresource="status") == (
        'pods "web" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself'
    )
    # claiming a pod by writing its nodeName into the status update does not help: the stored pod counts
    assert "can only update pod status" in refused(
        N1, "update", "Pod", pod("web", "n1"), pod("web", "n2"), subresource="status"
    )
    assert "can only create and delete mirror pods" in refused(
        N1, "update", "Pod", pod("web", "n1"), pod("web", "n1")
    )


def test_pod_create_delete_and_evict() -> None:
    assert "can only create mirror pods" in refused(N1, "create", "Pod", pod("p", "n1"), None)
    node_restriction(N1, "create", "Pod", pod("p", "n1", **{"kubernetes.io/config.mirror": "x"}), None)
    mirror_elsewhere = pod("p", "n2", **{"kubernetes.io/config.mirror": "x"})
    assert "spec.nodeName set to itself" in refused(N1, "create", "Pod", mirror_elsewhere, None)
    node_restriction(N1, "delete", "Pod", None, pod("p", "n1"))
    assert refused(N1, "delete", "Pod", None, pod("p", "n2")) == (
        'pods "p" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself'
    )
    node_restriction(N1, "create", "Pod", None, pod("p", "n1"), "eviction")
    assert "can only evict pods" in refused(N1, "create", "Pod", None, pod("p", "n2"), subresource="eviction")
    assert "may not write pods/exec" in refused(N1, "create", "Pod", None, pod("p", "n1"), subresource="exec")


def test_others_and_other_kinds_pass() -> None:
    alice = User("alice")
    node_restriction(alice, "update", "Node", node("n2"), node("n2"))
    node_restriction(alice, "update", "Pod", pod("web", "n2"), pod("web", "n2"))
    node_restriction(N1, "create", "Event", {"kind": "Event", "metadata": {"name": "e"}}, None)
    node_restriction(N1, "get", "Pod", None, pod("web", "n2"))  # reads are RBAC's business
