"""The discovery documents: which groups, versions, kinds, verbs and subresources nbkube serves.

kubectl builds its REST mapping (`po` -> pods in v1, `deploy` -> deployments.apps) from these, so
they are generated from `nbkube.api.kinds` and from nothing else. Both forms are served: the legacy
documents (/api, /apis, then one APIResourceList per group/version) and the aggregated ones
(`apidiscovery.k8s.io/v2` and `v2beta1` APIGroupDiscoveryList: every group's resources in one
answer to /api and one to /apis), which kubectl >= 1.28 asks for first through its Accept header.

A group is advertised only with resources of its own (an empty group makes `kubectl
api-resources` fail: "received empty response"); `policy/v1` has PodDisruptionBudgets. kubectl
drain finds the Eviction kind as the `pods/eviction` subresource of v1, whose group and version say
policy/v1, and evicts through it once the `policy` group is served.
"""

from __future__ import annotations

from typing import Any

from nbkube.api.kinds import KINDS, KindInfo
from nbkube.apiserver.conversion import CONVERTED
from nbkube.apiserver.routing import METRICS_KINDS, REVIEW_KINDS

__all__ = [
    "GIT_VERSION",
    "aggregated",
    "aggregated_content_type",
    "aggregated_version",
    "api_group_list",
    "api_versions",
    "resource_list",
    "served_group_versions",
    "version",
]

GIT_VERSION = "v1.32.0-nbkube"
_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
# kinds whose controllers own a replica count: they get the autoscaling/v1 `scale` subresource
SCALABLE = frozenset({"ReplicationController", "ReplicaSet", "Deployment", "StatefulSet"})


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
    """`v1`, `apps/v1`, ... in the order of the kind table (core first), then the review groups;
    a version served by conversion (`autoscaling/v1`) after its group's stored one."""
    out: list[str] = []
    for info in (*KINDS, *REVIEW_KINDS, *METRICS_KINDS, *(c.info for c in CONVERTED)):
        if info.api_version not in out:
            out.append(info.api_version)
    return out


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def api_group_list() -> dict[str, Any]:
    groups: list[dict[str, Any]] = []
    for gv in served_group_versions():
        if "/" not in gv:
            continue
        group, _, ver = gv.partition("/")
        entry = {"groupVersion": gv, "version": ver}
        known = next((g for g in groups if g["name"] == group), None)
        if known is not None:
            known["versions"].append(entry)  # the first listed (stored) version stays preferred
        else:
            groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


# the kinds `kubectl get all` lists, as upstream
_ALL_CATEGORY = frozenset(
    {"Pod", "ReplicationController", "Service", "ReplicaSet", "Deployment", "DaemonSet", "StatefulSet", "Job", "CronJob"}
)


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
    if info.kind in _ALL_CATEGORY:
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
    infos = [i for i in (*KINDS, *(c.info for c in CONVERTED)) if i.api_version == group_version]
    reviews = [i for i in REVIEW_KINDS if i.api_version == group_version]
    metrics = [i for i in METRICS_KINDS if i.api_version == group_version]
    if not infos and not reviews and not metrics:
        return None
    resources: list[dict[str, Any]] = [{**_resource(i), "verbs": ["create"]} for i in reviews]
    resources += [{**_resource(i), "verbs": ["get", "list"]} for i in metrics]
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
            resources.append(_sub(info, "binding", "Binding", ["create"]))
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


# -- aggregated discovery --------------------------------------------------------------------------

_AGGREGATED_VERSIONS = ("v2", "v2beta1")  # best first


def aggregated_version(accept: str) -> str | None:
    """The apidiscovery.k8s.io version (`v2`, `v2beta1`) an Accept header asks for in JSON, or None.

    client-go lists the aggregated media types before plain `application/json`, best first; we
    answer the best one we serve. A protobuf-only ask is not answered in the aggregated form."""
    asked: set[str] = set()
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        if media.lower() not in ("application/json", "*/*"):
            continue
        fields = dict(p.partition("=")[::2] for p in params)
        if fields.get("g") == "apidiscovery.k8s.io" and fields.get("as") == "APIGroupDiscoveryList":
            asked.add(fields.get("v", ""))
    return next((v for v in _AGGREGATED_VERSIONS if v in asked), None)


def aggregated_content_type(version: str) -> str:
    return f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"


def _resource_discovery(res: dict[str, Any], subs: list[dict[str, Any]], group: str, ver: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resource": res["name"],
        "responseKind": {"group": group, "version": ver, "kind": res["kind"]},
        "scope": "Namespaced" if res["namespaced"] else "Cluster",
        "singularResource": res["singularName"],
        "verbs": res["verbs"],
    }
    for key in ("shortNames", "categories"):
        if key in res:
            out[key] = res[key]
    if subs:
        out["subresources"] = [
            {
                "subresource": s["name"].partition("/")[2],
                "responseKind": {
                    "group": s.get("group", group),
                    "version": s.get("version", ver),
                    "kind": s["kind"],
                },
                "verbs": s["verbs"],
            }
            for s in subs
        ]
    return out


def _group_discovery(group_version: str) -> dict[str, Any]:
    listing = resource_list(group_version)
    assert listing is not None
    group, _, ver = group_version.rpartition("/")
    tops = [r for r in listing["resources"] if "/" not in r["name"]]
    resources = [
        _resource_discovery(
            r, [s for s in listing["resources"] if s["name"].startswith(r["name"] + "/")], group, ver
        )
        for r in tops
    ]
    return {"version": ver, "resources": resources, "freshness": "Current"}


def aggregated(core: bool, version: str) -> dict[str, Any]:
    """The APIGroupDiscoveryList of /api (`core`) or /apis, in apidiscovery.k8s.io/`version`."""
    items: list[dict[str, Any]] = []
    for gv in served_group_versions():
        if ("/" not in gv) != core:
            continue
        metadata: dict[str, Any] = {"creationTimestamp": None}
        if not core:
            metadata["name"] = gv.partition("/")[0]
            known = next((i for i in items if i["metadata"].get("name") == metadata["name"]), None)
            if known is not None:  # another version of a listed group, served by conversion
                known["versions"].append(_group_discovery(gv))
                continue
        items.append({"metadata": metadata, "versions": [_group_discovery(gv)]})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }
