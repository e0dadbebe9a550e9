"""NodeRestriction: a node agent may write only its own objects (upstream's admission plugin).

RBAC's `system:node` role lets every node update nodes, pods/status and leases; which ones is
beyond what a rule can say. The API server calls `node_restriction` for each authorized write by a
node (user `system:node:NAME` in group `system:nodes`) after decoding the body: a node may change
its own Node (not its taints), its own Lease in `kube-node-lease`, the status of pods bound to it,
evict or delete pods bound to it, and create only mirror pods for itself. Everyone else, and every
other kind, passes through untouched. Refusals raise Forbidden with upstream's message.
"""

from __future__ import annotations

import json
from typing import Any

from nbkube.api import kinds
from nbkube.apiserver.rbac import Subject
from nbkube.errors import Forbidden

__all__ = ["NODE_LEASE_NAMESPACE", "NODES_GROUP", "node_name_of", "node_restriction"]

NODES_GROUP = "system:nodes"
NODE_LEASE_NAMESPACE = "kube-node-lease"
_NODE_PREFIX = "system:node:"
_MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def node_name_of(user: Subject) -> str:
    """The node a user is (upstream's NodeIdentifier), or "" when it is not a node."""
    if user.name.startswith(_NODE_PREFIX) and NODES_GROUP in user.groups:
        return user.name[len(_NODE_PREFIX) :]
    return ""


def _meta(obj: Any) -> dict[str, Any]:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return meta if isinstance(meta, dict) else {}


def _spec(obj: Any) -> dict[str, Any]:
    spec = obj.get("spec") if isinstance(obj, dict) else None
    return spec if isinstance(spec, dict) else {}


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _refuse(kind: str, name: str, message: str) -> Forbidden:
    info = kinds.lookup(kind)
    resource = f"{info.plural}.{info.group}" if info.group else info.plural
    return Forbidden(
        f"{resource} {_q(name)} is forbidden: {message}" if name else f"{resource} is forbidden: {message}"
    )


def node_restriction(user: Subject, verb: str, kind: str, obj: Any, old: Any, subresource: str = "") -> None:
    """Refuse (Forbidden) a write a node may not make; return None for anything else.

    `verb` is the RBAC verb (create, update, patch, delete, deletecollection); `obj` the object as
    written (None for deletes), `old` the stored one (None for creates). For `pods/eviction`, `old`
    is the pod being evicted.
    """
    node = node_name_of(user)
    if not node:
        return
    op = {"patch": "update", "deletecollection": "delete"}.get(verb, verb)
    if op not in ("create", "update", "delete"):
        return
    name = str(_meta(obj).get("name") or _meta(old).get("name") or "")
    if kind == "Node":
        _node(node, op, name, obj, old)
    elif kind == "Lease":
        namespace = str(_meta(obj).get("namespace") or _meta(old).get("namespace") or "")
        if namespace != NODE_LEASE_NAMESPACE:
            raise _refuse(kind, name, f"can only access leases in the {_q(NODE_LEASE_NAMESPACE)} namespace")
        if name != node:
            raise _refuse(kind, name, "can only access node lease with the same name as the requesting node")
    elif kind == "Pod":
        _pod(node, op, name, obj, old, subresource)


def _node(node: str, op: str, name: str, obj: Any, old: Any) -> None:
    if name != node:
        raise _refuse("Node", name, f"node {_q(node)} is not allowed to modify node {_q(name)}")
    taints_changed = (_spec(obj).get("taints") or []) != (_spec(old).get("taints") or [])
    if op == "update" and old is not None and obj is not None and taints_changed:
        raise _refuse("Node", name, f"node {_q(node)} is not allowed to modify taints")


def _pod(node: str, op: str, name: str, obj: Any, old: Any, subresource: str) -> None:
    # the stored pod says where it is bound (spec.nodeName never changes once set)
    bound = str(_spec(old if old is not None else obj).get("nodeName") or "")
    if subresource == "status":
        if op != "update":
            raise _refuse(
                "Pod", name, f"unexpected operation {op}, node {_q(node)} can only update pod status"
            )
        if bound != node:
            raise _refuse(
                "Pod",
                name,
                f"node {_q(node)} can only update pod status for pods with spec.nodeName set to itself",
            )
        return
    if subresource == "eviction":
        if bound != node:
            raise _refuse("Pod", name, f"node {node} can only evict pods with spec.nodeName set to itself")
        return
    if subresource:
        raise _refuse("Pod", name, f"node {_q(node)} may not write pods/{subresource}")
    if op == "create":
        if _MIRROR_ANNOTATION not in (_meta(obj).get("annotations") or {}):
            raise _refuse(
                "Pod",
                name,
                f"pod does not have {_q(_MIRROR_ANNOTATION)} annotation, node {_q(node)} can only create mirror pods",
            )
        if bound != node:
            raise _refuse(
                "Pod", name, f"node {_q(node)} can only create pods with spec.nodeName set to itself"
            )
    elif op == "delete":
        if bound != node:
            raise _refuse(
                "Pod", name, f"node {_q(node)} can only delete pods with spec.nodeName set to itself"
            )
    else:
        raise _refuse(
            "Pod",
            name,
            f"unexpected operation {_q(op.upper())}, node {_q(node)} can only create and delete mirror pods",
        )
