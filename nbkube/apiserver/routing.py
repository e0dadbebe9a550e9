"""URL paths of the Kubernetes REST API, parsed into which kind, namespace, name and subresource.

`/api/v1/namespaces/default/pods/web/status` and `/apis/apps/v1/deployments` name the same things the
registry's arguments do; `parse_resource_path` is that translation (and the only place that knows the
URL layout), so handlers never split paths themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from nbkube.api.kinds import KINDS, KindInfo, lookup
from nbkube.apiserver.conversion import converted_for
from nbkube.errors import BadRequest, NotFound

__all__ = ["CONNECT_SUBRESOURCES", "METRICS_KINDS", "REVIEW_KINDS", "FieldRequirement", "Route", "parse_field_selector", "parse_resource_path"]

SUBRESOURCES = frozenset({"status", "scale", "log", "eviction", "binding", "token", "exec", "attach", "portforward"})
# the pod subresources that upgrade to a stream (WebSocket channels, see nbkube/apiserver/podstreams.py)
CONNECT_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})

# Kinds that are answers, not stored objects: a client POSTs one and gets it back with a status
# filled in by the server (who am I, may I). Only `create` is served on them.
REVIEW_KINDS: tuple[KindInfo, ...] = (
    KindInfo("SelfSubjectAccessReview", "authorization.k8s.io/v1", "selfsubjectaccessreviews", namespaced=False),
    KindInfo("SelfSubjectRulesReview", "authorization.k8s.io/v1", "selfsubjectrulesreviews", namespaced=False),
    KindInfo("SelfSubjectReview", "authentication.k8s.io/v1", "selfsubjectreviews", namespaced=False),
)


# The resource-metrics API (metrics-server's group): answers from the registry's MetricsStore,
# served by nbkube/apiserver/metrics_api.py; get and list only (and nbkube's node report, a PUT).
METRICS_KINDS: tuple[KindInfo, ...] = (
    KindInfo("PodMetrics", "metrics.k8s.io/v1beta1", "pods", has_status=False),
    KindInfo("NodeMetrics", "metrics.k8s.io/v1beta1", "nodes", namespaced=False, has_status=False),
)


@dataclass(frozen=True)
class Route:
    info: KindInfo
    namespace: str = ""  # "" for cluster-scoped kinds and for the all-namespaces list
    name: str = ""  # "" for the collection
    subresource: str = ""
    served_version: str = ""  # an older version served by conversion (nbkube/apiserver/conversion.py)


def _group_version(parts: list[str]) -> tuple[str, list[str]] | None:
    if len(parts) >= 2 and parts[0] == "api":
        return parts[1], parts[2:]
    if len(parts) >= 3 and parts[0] == "apis":
        return f"{parts[1]}/{parts[2]}", parts[3:]
    return None


def _kind(group_version: str, plural: str) -> KindInfo:
    for info in (*KINDS, *REVIEW_KINDS, *METRICS_KINDS):
        if info.api_version == group_version and info.plural == plural:
            return info
    raise NotFound(f'the server could not find the requested resource ("{plural}" in {group_version})')


def parse_resource_path(path: str) -> Route | None:
    """The Route for a resource URL; None when `path` is not under /api/v1 or /apis/G/V/ at all."""
    parts = [p for p in path.split("/") if p]
    gv = _group_version(parts)
    if gv is None:
        return None
    group_version, rest = gv
    if not rest:
        return None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    else:
        namespace = ""
    conv = converted_for(group_version, rest[0])
    info = lookup(conv.info.kind) if conv is not None else _kind(group_version, rest[0])
    if namespace and not info.namespaced:
        raise NotFound(f"the server could not find the requested resource ({info.plural} is cluster-scoped)")
    name = rest[1] if len(rest) >= 2 else ""
    sub = rest[2] if len(rest) >= 3 else ""
    if len(rest) > 3 or (sub and sub not in SUBRESOURCES):
        raise NotFound(f"the server could not find the requested resource ({path})")
    if (sub in ("log", "eviction", "binding", *CONNECT_SUBRESOURCES) and info.kind != "Pod") or (sub == "token" and info.kind != "ServiceAccount"):
        raise NotFound(f"the server could not find the requested resource ({info.plural}/{sub})")
    if sub == "status" and not info.has_status:
        raise NotFound(f"the server could not find the requested resource ({info.plural} has no status)")
    return Route(info, namespace, name, sub, conv.info.api_version if conv is not None else "")


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    value: str
    negate: bool = False

    def matches(self, obj: dict[str, object]) -> bool:
        cur: object = obj
        for part in self.path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        text = "" if cur is None else ("true" if cur is True else "false" if cur is False else str(cur))
        return (text != self.value) if self.negate else (text == self.value)


def parse_field_selector(text: str) -> list[FieldRequirement]:
    """`metadata.name=web,status.phase!=Running` (also `==`); any dotted field path is accepted."""
    reqs: list[FieldRequirement] = []
    for term in (t.strip() for t in text.split(",")):
        if not term:
            continue
        op = next((o for o in ("!=", "==", "=") if o in term), "")
        if not op:
            raise BadRequest(f'invalid field selector "{term}": expected FIELD=VALUE or FIELD!=VALUE')
        path, _, value = term.partition(op)
        negate = op == "!="
        if not path.strip():
            raise BadRequest(f'invalid field selector "{term}": empty field')
        reqs.append(FieldRequirement(path.strip(), value.strip(), negate))
    return reqs
