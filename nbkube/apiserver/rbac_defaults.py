"""The default ClusterRoles and ClusterRoleBindings, reconciled at startup as kube-apiserver's
bootstrap policy is (plugin/pkg/auth/authorizer/rbac/bootstrappolicy upstream).

`ensure_default_roles(registry)` creates what is missing and adds back rules and subjects that were
removed from a default object marked `rbac.authorization.kubernetes.io/autoupdate: "true"`; it never
takes away what an administrator added, leaves objects alone whose annotation says "false", and
writes nothing when everything is in place, so every API server may call it on every start.

The rules are upstream's for `cluster-admin`, `admin`, `edit`, `view`, `system:basic-user`,
`system:discovery`, `system:public-info-viewer` and `system:node`, restricted to the resources
nbkube serves or is adding (and their subresources). Upstream builds admin/edit/view by aggregation;
nbkube does not aggregate, so each lists its rules whole (admin = edit + roles; edit = view + writes).
`system:node` is bound to the group `system:nodes`: nbkube has no Node authorizer, so NodeRestriction
(`nbkube.apiserver.noderestriction`) is what keeps a node agent to its own objects.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from nbkube.api.meta import Obj
from nbkube.apiserver.rbac import NonResourceRule, ResourceRule
from nbkube.errors import AlreadyExists, Conflict, NotFound
from nbkube.registry.registry import Registry

__all__ = ["AUTOUPDATE", "default_cluster_role_bindings", "default_cluster_roles", "ensure_default_roles"]

log = logging.getLogger(__name__)

GROUP = "rbac.authorization.k8s.io"
V1 = f"{GROUP}/v1"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}

READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete", "deletecollection")
READ_WRITE = READ + WRITE

Rule = dict[str, list[str]]


def _rule(verbs: tuple[str, ...] | str, groups: str, resources: str) -> Rule:
    return {
        "verbs": [verbs] if isinstance(verbs, str) else list(verbs),
        "apiGroups": groups.split(",") if groups else [""],
        "resources": resources.split(),
    }


def _urls(verbs: str, urls: str) -> Rule:
    return {"verbs": [verbs], "nonResourceURLs": urls.split()}


_VIEW = [
    _rule(
        READ,
        "",
        "pods replicationcontrollers replicationcontrollers/scale serviceaccounts services services/status "
        "endpoints configmaps",
    ),
    _rule(
        READ,
        "",
        "limitranges resourcequotas events pods/status resourcequotas/status namespaces/status "
        "replicationcontrollers/status pods/log",
    ),
    # read access to namespaces at the namespace scope means reading *this* namespace
    _rule(READ, "", "namespaces"),
    _rule(
        READ,
        "apps",
        "statefulsets statefulsets/status statefulsets/scale daemonsets daemonsets/status deployments "
        "deployments/status deployments/scale replicasets replicasets/status replicasets/scale",
    ),
    _rule(READ, "autoscaling", "horizontalpodautoscalers horizontalpodautoscalers/status"),
    _rule(READ, "metrics.k8s.io", "pods nodes"),  # as system:aggregated-metrics-reader
    _rule(READ, "batch", "jobs cronjobs cronjobs/status jobs/status"),
    _rule(READ, "policy", "poddisruptionbudgets poddisruptionbudgets/status"),
    _rule(READ, "networking.k8s.io", "networkpolicies"),
    _rule(READ, "", "persistentvolumeclaims persistentvolumeclaims/status"),
    _rule(READ, "apps", "controllerrevisions"),
    _rule(READ, "discovery.k8s.io", "endpointslices"),
]

_EDIT = [
    *_VIEW,
    # read on the escalating resources view leaves out
    _rule(READ, "", "pods/attach pods/exec pods/portforward secrets"),
    _rule("impersonate", "", "serviceaccounts"),
    _rule(WRITE, "", "pods pods/attach pods/exec pods/portforward"),
    _rule("create", "", "pods/eviction"),
    _rule(
        WRITE,
        "",
        "replicationcontrollers replicationcontrollers/scale serviceaccounts services configmaps secrets",
    ),
    _rule("create", "", "serviceaccounts/token"),
    _rule(
        WRITE,
        "apps",
        "statefulsets statefulsets/scale daemonsets deployments deployments/scale replicasets replicasets/scale",
    ),
    _rule(WRITE, "autoscaling", "horizontalpodautoscalers"),
    _rule(WRITE, "batch", "jobs cronjobs"),
    _rule(WRITE, "policy", "poddisruptionbudgets"),
    _rule(WRITE, "networking.k8s.io", "networkpolicies"),
    _rule(WRITE, "", "persistentvolumeclaims"),
]

_ADMIN = [*_EDIT, _rule(READ_WRITE, GROUP, "roles rolebindings")]

_NODE = [
    _rule(READ, "", "services endpoints"),  # the node's proxy
    _rule(READ, "discovery.k8s.io", "endpointslices"),
    _rule(("create", "get", "list", "watch"), "", "nodes"),
    _rule(("update", "patch"), "", "nodes/status"),
    _rule(("update", "patch"), "", "nodes"),
    _rule(("create", "update", "patch"), "", "events"),
    _rule(READ, "", "pods"),
    _rule(("create", "delete"), "", "pods"),
    _rule(("update", "patch"), "", "pods/status"),
    _rule("create", "", "pods/eviction"),
    # configMap and secret volumes (upstream narrows this with the Node authorizer nbkube lacks)
    _rule(READ, "", "secrets configmaps"),
    _rule("create", "", "serviceaccounts/token"),
    _rule(("get", "create", "update", "patch", "delete"), "coordination.k8s.io", "leases"),
    # nbkube's node agent also runs the NetworkPolicy firewall, which watches namespaces and policies
    _rule(READ, "", "namespaces"),
    _rule(READ, "networking.k8s.io", "networkpolicies"),
    # persistentVolumeClaim volumes: the claim, its volume's folder and node
    _rule(("get",), "", "persistentvolumeclaims persistentvolumes"),
    _rule("update", "metrics.k8s.io", "nodes"),  # its resource-metrics report (nbkube/client/metrics.py)
]

_HEALTH = "/livez /readyz /healthz /version /version/"

_ROLES: dict[str, list[Rule]] = {
    "cluster-admin": [
        {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
        {"verbs": ["*"], "nonResourceURLs": ["*"]},
    ],
    "admin": _ADMIN,
    "edit": _EDIT,
    "view": _VIEW,
    "system:basic-user": [
        _rule("create", "authorization.k8s.io", "selfsubjectaccessreviews selfsubjectrulesreviews")
    ],
    "system:discovery": [_urls("get", f"{_HEALTH} /openapi /openapi/* /api /api/* /apis /apis/*")],
    "system:public-info-viewer": [_urls("get", _HEALTH)],
    "system:node": _NODE,
}

# binding name (= ClusterRole name) -> groups bound
_BINDINGS: dict[str, tuple[str, ...]] = {
    "cluster-admin": ("system:masters",),
    "system:discovery": ("system:authenticated",),
    "system:basic-user": ("system:authenticated",),
    "system:public-info-viewer": ("system:authenticated", "system:unauthenticated"),
    "system:node": ("system:nodes",),
}


def _meta(name: str) -> dict[str, Any]:
    return {"name": name, "labels": dict(_LABELS), "annotations": {AUTOUPDATE: "true"}}


def default_cluster_roles() -> list[Obj]:
    return [
        {"apiVersion": V1, "kind": "ClusterRole", "metadata": _meta(name), "rules": copy.deepcopy(rules)}
        for name, rules in _ROLES.items()
    ]


def default_cluster_role_bindings() -> list[Obj]:
    return [
        {
            "apiVersion": V1,
            "kind": "ClusterRoleBinding",
            "metadata": _meta(name),
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "Group", "apiGroup": GROUP, "name": g} for g in groups],
        }
        for name, groups in _BINDINGS.items()
    ]


# --- reconciliation ------------------------------------------------------------------------------


def _compiled(rules: list[Any]) -> tuple[list[ResourceRule], list[NonResourceRule]]:
    res, non = [], []
    for r in rules:
        if not isinstance(r, dict):
            continue
        verbs = tuple(r.get("verbs") or ())
        if r.get("nonResourceURLs"):
            non.append(NonResourceRule(verbs, tuple(r["nonResourceURLs"])))
        else:
            res.append(
                ResourceRule(
                    verbs,
                    tuple(r.get("apiGroups") or ()),
                    tuple(r.get("resources") or ()),
                    tuple(r.get("resourceNames") or ()),
                )
            )
    return res, non


def _covers(have: list[Any], want: Rule) -> bool:
    """Whether the rules `have` grant everything `want` grants (upstream's Covers, one rule)."""
    res, non = _compiled(have)
    urls = want.get("nonResourceURLs")
    if urls:
        return all(any(r.allows(v, u) for r in non) for v in want["verbs"] for u in urls)
    names = want.get("resourceNames") or []
    for verb in want["verbs"]:
        for group in want.get("apiGroups") or []:
            for resource in want.get("resources") or []:
                base, _, sub = resource.partition("/")
                ok = False
                for r in res:
                    if names and r.resource_names and not set(names) <= set(r.resource_names):
                        continue
                    if not names and r.resource_names:
                        continue
                    if r.allows(verb, group, base, sub, names[0] if names else ""):
                        ok = True
                        break
                if not ok:
                    return False
    return True


def _reconcile_role(registry: Registry, want: Obj) -> str:
    name = want["metadata"]["name"]
    try:
        have = registry.get("ClusterRole", name)
    except NotFound:
        registry.create(want)
        return "created"
    meta = have.get("metadata") or {}
    if (meta.get("annotations") or {}).get(AUTOUPDATE) == "false":
        return ""
    rules = list(have.get("rules") or [])
    return _add_missing(registry, have, want, "rules", [r for r in want["rules"] if not _covers(rules, r)])


def _add_missing(registry: Registry, have: Obj, want: Obj, field: str, missing: list[Any]) -> str:
    """Write `have` with `missing` appended to its `field` and the default labels and annotations
    it lacks (its own values win), as the bootstrap policy repairs a default object; "" when
    nothing is missing."""
    meta = have.get("metadata") or {}
    labels = {**want["metadata"]["labels"], **(meta.get("labels") or {})}
    annotations = {**want["metadata"]["annotations"], **(meta.get("annotations") or {})}
    if (
        not missing
        and labels == (meta.get("labels") or {})
        and annotations == (meta.get("annotations") or {})
    ):
        return ""
    new = copy.deepcopy(have)
    new[field] = list(have.get(field) or []) + missing
    new["metadata"]["labels"] = labels
    new["metadata"]["annotations"] = annotations
    registry.update(new)
    return "updated"


def _reconcile_binding(registry: Registry, want: Obj) -> str:
    name = want["metadata"]["name"]
    try:
        have = registry.get("ClusterRoleBinding", name)
    except NotFound:
        registry.create(want)
        return "created"
    meta = have.get("metadata") or {}
    if (meta.get("annotations") or {}).get(AUTOUPDATE) == "false":
        return ""
    if have.get("roleRef") != want["roleRef"]:
        # roleRef is immutable: upstream deletes and recreates, keeping the subjects it had
        subjects = list(have.get("subjects") or [])
        subjects += [s for s in want["subjects"] if s not in subjects]
        registry.delete("ClusterRoleBinding", name)
        registry.create({**want, "subjects": subjects})
        return "recreated"
    subjects = list(have.get("subjects") or [])
    return _add_missing(registry, have, want, "subjects", [s for s in want["subjects"] if s not in subjects])


def ensure_default_roles(registry: Registry) -> list[tuple[str, str, str]]:
    """Create or repair the default ClusterRoles and ClusterRoleBindings; returns what was written
    as (kind, name, "created" | "updated" | "recreated"), empty when everything was in place.

    Another API server reconciling at the same time may win a write: its result is as good as ours,
    so AlreadyExists and Conflict are retried once and then left to it.
    """
    done: list[tuple[str, str, str]] = []
    work = [(_reconcile_role, o) for o in default_cluster_roles()]
    work += [(_reconcile_binding, o) for o in default_cluster_role_bindings()]
    for fn, want in work:
        for attempt in range(2):
            try:
                what = fn(registry, copy.deepcopy(want))
            except (AlreadyExists, Conflict):
                if attempt:
                    log.info(
                        "default %s %s: another writer reconciled it", want["kind"], want["metadata"]["name"]
                    )
                continue
            if what:
                done.append((want["kind"], want["metadata"]["name"], what))
            break
    return done
