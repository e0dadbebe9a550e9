"""RBAC privilege-escalation prevention: nobody grants, through a Role or a binding, what they do not hold.

Kubernetes' RBAC storage refuses a Role/ClusterRole whose rules the writer does not hold themselves
(unless they may `escalate` roles), and a RoleBinding/ClusterRoleBinding to a role whose rules the
writer does not hold in that scope (unless they may `bind` that role). Without it the `admin`
ClusterRole, which may write RoleBindings, would let a tenant bind `cluster-admin` in their own
namespace and then, for instance, relabel the namespace out of Pod Security `restricted`.

`check_escalation` runs in the gate (nbkube/apiserver/security.py) on every create, update and
patch of the four RBAC kinds, on the object as it would be stored. A write that leaves the rules
(a role) or the roleRef and subjects (a binding) as they are passes: what is stored was allowed
when it was written. A rule is held when every verb, group, resource and name it lists is allowed
to the writer by the authorizer, taken literally: a `*` is held only through a `*`.
"""

from __future__ import annotations

import json
from typing import Any

from nbkube.api.meta import Obj
from nbkube.api.patch import merge_patch
from nbkube.apiserver.authn import UserInfo
from nbkube.apiserver.rbac import RBACAuthorizer, RequestAttributes
from nbkube.apiserver.resources import APPLY_PATCH, Request, apply_patch
from nbkube.apiserver.routing import Route
from nbkube.errors import BadRequest, Forbidden, NotFound
from nbkube.registry.registry import Registry

__all__ = ["RBAC_KINDS", "check_escalation"]

GROUP = "rbac.authorization.k8s.io"
RBAC_KINDS = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})
_ROLE_PLURAL = {"Role": "roles", "ClusterRole": "clusterroles"}


def _new_object(req: Request, current: Obj | None, kind: str) -> Obj | None:
    """The object the write would store (None: a patch of nothing, which the registry answers 404)."""
    if req.method in ("POST", "PUT"):
        return req.body if isinstance(req.body, dict) else None
    if current is None:
        return req.body if req.content_type == APPLY_PATCH and isinstance(req.body, dict) else None
    if req.content_type == APPLY_PATCH:
        return merge_patch(current, req.body) if isinstance(req.body, dict) else None
    try:
        new = apply_patch(current, req.body, req.content_type, kind)
    except BadRequest:
        return None  # the write itself fails with this error
    return new if isinstance(new, dict) else None


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _held(authorizer: RBACAuthorizer, user: UserInfo, rule: Any, namespace: str) -> bool:
    if not isinstance(rule, dict):
        return True  # validation refuses it
    verbs = _strings(rule.get("verbs"))
    urls = _strings(rule.get("nonResourceURLs"))
    if urls:
        return all(
            authorizer.authorize(RequestAttributes(user, verb, path=url, is_resource_request=False)).allowed
            for verb in verbs
            for url in urls
        )
    for group in _strings(rule.get("apiGroups")):
        for resource in _strings(rule.get("resources")):
            base, _, sub = resource.partition("/")
            for name in _strings(rule.get("resourceNames")) or [""]:
                for verb in verbs:
                    attrs = RequestAttributes(
                        user,
                        verb,
                        api_group=group,
                        resource=base,
                        subresource=sub,
                        name=name,
                        namespace=namespace,
                    )
                    if not authorizer.authorize(attrs).allowed:
                        return False
    return True


def _rule_text(rule: Any) -> str:
    """A rule as upstream's escalation error prints it."""
    if not isinstance(rule, dict):
        return str(rule)
    fields = []
    for key, label in (
        ("apiGroups", "APIGroups"),
        ("resources", "Resources"),
        ("resourceNames", "ResourceNames"),
        ("nonResourceURLs", "NonResourceURLs"),
        ("verbs", "Verbs"),
    ):
        values = _strings(rule.get(key))
        if values:
            fields.append(f"{label}:[{', '.join(json.dumps(v) for v in values)}]")
    return "{" + ", ".join(fields) + "}"


def _may(
    authorizer: RBACAuthorizer, user: UserInfo, verb: str, role_kind: str, name: str, namespace: str
) -> bool:
    attrs = RequestAttributes(
        user, verb, api_group=GROUP, resource=_ROLE_PLURAL[role_kind], name=name, namespace=namespace
    )
    return authorizer.authorize(attrs).allowed


def check_escalation(
    registry: Registry, authorizer: RBACAuthorizer, user: UserInfo, route: Route, req: Request
) -> None:
    """Raise Forbidden when this write of an RBAC object grants what `user` does not hold."""
    kind = route.info.kind
    if kind not in RBAC_KINDS or req.method not in ("POST", "PUT", "PATCH") or route.subresource:
        return
    namespace = route.namespace if route.info.namespaced else ""
    current: Obj | None = None
    if route.name:
        try:
            current = registry.get(kind, route.name, namespace)
        except NotFound:
            current = None
    new = _new_object(req, current, kind)
    if new is None:
        return
    name = route.name or str((new.get("metadata") or {}).get("name") or "")
    if kind in _ROLE_PLURAL:
        rules = new.get("rules")
        if current is not None and current.get("rules") == rules:
            return
        if _may(authorizer, user, "escalate", kind, name, namespace):
            return
        granted = rules if isinstance(rules, list) else []
    else:
        ref = new.get("roleRef")
        if (
            current is not None
            and current.get("roleRef") == ref
            and current.get("subjects") == new.get("subjects")
        ):
            return
        if not isinstance(ref, dict) or ref.get("kind") not in _ROLE_PLURAL or not ref.get("name"):
            return  # validation refuses it
        role_kind, role_name = str(ref["kind"]), str(ref["name"])
        if role_kind == "Role" and not namespace:
            return  # validation refuses it (a ClusterRoleBinding binds ClusterRoles only)
        # asked in the binding's namespace, as upstream: a Role may allow binding a ClusterRole there
        if _may(authorizer, user, "bind", role_kind, role_name, namespace):
            return
        try:
            role = registry.get(role_kind, role_name, namespace if role_kind == "Role" else "")
        except NotFound:
            raise Forbidden(
                f'{route.info.plural}.{GROUP} "{name}" is forbidden: {_ROLE_PLURAL[role_kind]}.{GROUP} '
                f'"{role_name}" not found: only a user who may bind it can bind a role that does not exist'
            ) from None
        role_rules = role.get("rules")
        granted = role_rules if isinstance(role_rules, list) else []
    missing = [rule for rule in granted if not _held(authorizer, user, rule, namespace)]
    if missing:
        groups = "[" + ",".join(json.dumps(g) for g in user.groups) + "]"
        raise Forbidden(
            f'{route.info.plural}.{GROUP} "{name}" is forbidden: user {json.dumps(user.name)} (groups={groups}) '
            "is attempting to grant RBAC permissions not currently held:\n"
            + "\n".join(_rule_text(rule) for rule in missing)
        )
