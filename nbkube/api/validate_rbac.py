"""Validation of the RBAC kinds (Role, ClusterRole, RoleBinding, ClusterRoleBinding), as upstream's
pkg/apis/rbac/validation, so a role the authorizer could never apply is refused when written.

`validation.validate` calls the per-kind functions here; `validate_binding_update` is the rule an
update may not break (a binding's roleRef is immutable: delete and recreate it to point elsewhere).
The authorizer in `nbkube.apiserver.rbac` relies on what these checks guarantee (verbs present,
resource rules with groups and resources, nonResourceURLs only in ClusterRoles).
"""

from __future__ import annotations

from typing import Any

from nbkube.api import naming
from nbkube.api.fieldcheck import Errors, join

__all__ = [
    "GROUP",
    "SUBJECT_KINDS",
    "VERBS",
    "validate_binding_update",
    "validate_cluster_role",
    "validate_cluster_role_binding",
    "validate_role",
    "validate_role_binding",
]

GROUP = "rbac.authorization.k8s.io"
# The verbs Kubernetes' authorizers know (kube-apiserver's request verbs plus the RBAC/PSP/CSR
# special ones): a verb outside this set can never match a request, so it is a typo.
VERBS = (
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "impersonate",
    "bind",
    "escalate",
    "use",
    "approve",
    "sign",
    "proxy",
    "*",
)
_VERB_SET = frozenset(VERBS)
SUBJECT_KINDS = ("User", "Group", "ServiceAccount")


def _check_rules(e: Errors, obj: dict[str, Any], namespaced: bool) -> None:
    for rp, rule in e.maps(obj, "rules", ""):
        verbs = e.strings(rule, "verbs", rp)
        if not verbs:
            e.add(join(rp, "verbs"), "required: verbs must contain at least one value")
        for j, verb in enumerate(verbs):
            if verb not in _VERB_SET:
                e.unsupported(join(join(rp, "verbs"), j), verb, VERBS)
        groups = e.strings(rule, "apiGroups", rp)
        resources = e.strings(rule, "resources", rp)
        names = e.strings(rule, "resourceNames", rp)
        urls = e.strings(rule, "nonResourceURLs", rp)
        if urls:
            if namespaced:
                e.invalid(
                    join(rp, "nonResourceURLs"), urls, "namespaced rules cannot apply to non-resource URLs"
                )
            if groups or resources or names:
                e.invalid(
                    join(rp, "nonResourceURLs"),
                    urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                )
            continue
        if not groups:
            e.add(join(rp, "apiGroups"), "required: resource rules must supply at least one api group")
        if not resources:
            e.add(join(rp, "resources"), "required: resource rules must supply at least one resource")


def validate_role(e: Errors, obj: dict[str, Any]) -> None:
    _check_rules(e, obj, namespaced=True)


def validate_cluster_role(e: Errors, obj: dict[str, Any]) -> None:
    _check_rules(e, obj, namespaced=False)
    if obj.get("aggregationRule") is not None:
        # Upstream fills an aggregated role's rules from a controller nbkube does not run; accepting
        # the field would leave the role silently empty.
        e.forbidden("aggregationRule", "nbkube does not aggregate ClusterRoles: list the rules in `rules`")


def _check_role_ref(e: Errors, obj: dict[str, Any], kinds: tuple[str, ...]) -> None:
    ref = e.mapping(obj, "roleRef", "", required=True)
    if ref is None:
        return
    e.one_of(ref, "apiGroup", "roleRef", (GROUP,), required=True)
    e.one_of(ref, "kind", "roleRef", kinds, required=True)
    name = e.string(ref, "name", "roleRef", required=True)
    if name:
        e.extend_messages("roleRef.name", name, naming.check_path_segment(name))


def _check_subjects(e: Errors, obj: dict[str, Any], namespaced: bool) -> None:
    for sp, subject in e.maps(obj, "subjects", ""):
        name = e.string(subject, "name", sp, required=True)
        kind = e.string(subject, "kind", sp)
        group = e.string(subject, "apiGroup", sp) or ""
        namespace = e.string(subject, "namespace", sp) or ""
        if kind == "ServiceAccount":
            if name:
                e.extend_messages(join(sp, "name"), name, naming.check_dns1123_subdomain(name))
            if group:
                e.unsupported(join(sp, "apiGroup"), group, ("",))
            if not namespaced and not namespace:
                e.add(join(sp, "namespace"), "required: a ServiceAccount subject of a ClusterRoleBinding")
        elif kind in ("User", "Group"):
            if group != GROUP:
                e.unsupported(join(sp, "apiGroup"), group, (GROUP,))
        else:
            e.unsupported(join(sp, "kind"), kind or "", SUBJECT_KINDS)


def validate_role_binding(e: Errors, obj: dict[str, Any]) -> None:
    _check_role_ref(e, obj, ("Role", "ClusterRole"))
    _check_subjects(e, obj, namespaced=True)


def validate_cluster_role_binding(e: Errors, obj: dict[str, Any]) -> None:
    _check_role_ref(e, obj, ("ClusterRole",))
    _check_subjects(e, obj, namespaced=False)


def validate_binding_update(e: Errors, new: dict[str, Any], old: dict[str, Any]) -> None:
    if new.get("roleRef") != old.get("roleRef"):
        e.invalid("roleRef", new.get("roleRef"), "cannot change roleRef")
