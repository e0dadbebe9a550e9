"""The discovery documents: which groups, versions, kinds, verbs and subresources nbkube serves.

kubectl builds its REST mapping (`po` -> pods in v1, `deploy` -> deployments.apps) from these, so
they are generated from `nbkube.api.kinds` and from nothing else. We answer only the legacy
(non-aggregated) forms with `Content-Type: application/json`: kubectl 1.32 asks for the aggregated
`apidiscovery.k8s.io/v2` form first and falls back when the server answers plain JSON.
"""

from __future__ import annotations

from typing import Any

from nbkube.api.kinds import KINDS, KindInfo
from nbkube.apiserver.routing import REVIEW_KINDS

__all__ = [
    "GIT_VERSION",
    "api_group_list",
    "api_versions",
    "resource_list",
    "served_group_versions",
    "version",
]

GIT_VERSION = "v1.32.0-nbkube"
_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
# kinds whose controllers own a replica count: they get the autoscaling/v1 `scale` subresource
SCALABLE = frozenset({"ReplicationController", "ReplicaSet", "Deployment"})


def version() -> dict[str, str]:
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "python",
        "compiler": "cpython",
        "platform": "linux/amd64",
    }


def served_group_versions() -> list[str]:
    """`v1`, `apps/v1`, ... in the order of the kind table (core first), then the review groups."""
    out: list[str] = []
    for info in (*KINDS, *REVIEW_KINDS):
        if info.api_version not in out:
            out.append(info.api_version)
    return out


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


# Groups served only through a subresource of another group's kind: `policy/v1` for pods/eviction.
# Its resource list is empty (no PodDisruptionBudgets), but kubectl drain evicts only when it is listed.
SUBRESOURCE_GROUPS = ("policy/v1",)


def api_group_list() -> dict[str, Any]:
    groups = []
    for gv in [*served_group_versions(), *SUBRESOURCE_GROUPS]:
        if "/" not in gv:
            continue
        group, _, ver = gv.partition("/")
        entry = {"groupVersion": gv, "version": ver}
        groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _resource(info: KindInfo) -> dict[str, Any]:
    res: dict[str, Any] = {
        "name": info.plural,
        "singularName": info.singular,
        "namespaced": info.namespaced,
        "kind": info.kind,
        "verbs": list(_VERBS),
    }
    if info.short_names:
        res["shortNames"] = list(info.short_names)
    if info.kind in ("Pod", "ReplicationController", "Service", "ReplicaSet", "Deployment"):
        res["categories"] = ["all"]
    return res


def _sub(
    info: KindInfo, sub: str, kind: str, verbs: list[str], group: str = "", ver: str = ""
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "name": f"{info.plural}/{sub}",
        "singularName": "",
        "namespaced": info.namespaced,
        "kind": kind,
        "verbs": verbs,
    }
    if group or ver:
        res["group"], res["version"] = group, ver
    return res


def resource_list(group_version: str) -> dict[str, Any] | None:
    """The APIResourceList of one group/version, or None when nbkube does not serve it."""
    infos = [i for i in KINDS if i.api_version == group_version]
    reviews = [i for i in REVIEW_KINDS if i.api_version == group_version]
    if not infos and not reviews and group_version not in SUBRESOURCE_GROUPS:
        return None
    resources: list[dict[str, Any]] = [{**_resource(i), "verbs": ["create"]} for i in reviews]
    for info in infos:
        resources.append(_resource(info))
        if info.has_status:
            resources.append(_sub(info, "status", info.kind, ["get", "patch", "update"]))
        if info.kind == "Pod":
            resources.append(_sub(info, "log", "Pod", ["get"]))
            for sub, options in (("attach", "PodAttachOptions"), ("exec", "PodExecOptions")):
                resources.append(_sub(info, sub, options, ["create", "get"]))
            resources.append(_sub(info, "portforward", "PodPortForwardOptions", ["create", "get"]))
            # `kubectl drain` evicts through this when the `policy` group is served (see below)
            resources.append(_sub(info, "eviction", "Eviction", ["create"], "policy", "v1"))
        if info.kind == "ServiceAccount":
            resources.append(_sub(info, "token", "TokenRequest", ["create"], "authentication.k8s.io", "v1"))
        if info.kind in SCALABLE:
            resources.append(_sub(info, "scale", "Scale", ["get", "patch", "update"], "autoscaling", "v1"))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }
