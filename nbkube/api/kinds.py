"""The table of object kinds nbkube serves: names, API groups, plural/short forms and scope.

Everything that turns a user's word (`po`, `rc`, `deploy`, `Pod`, `pods`) or a manifest's
`apiVersion`/`kind` into a kind goes through here, so the CLI, the registry's key layout and (later)
the HTTP API's discovery documents agree on one list.
"""

from __future__ import annotations

from dataclasses import dataclass

from nbkube.errors import BadRequest


@dataclass(frozen=True)
class KindInfo:
    kind: str
    api_version: str
    plural: str
    short_names: tuple[str, ...] = ()
    namespaced: bool = True
    has_status: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def singular(self) -> str:
        return self.kind.lower()


KINDS: tuple[KindInfo, ...] = (
    KindInfo("Namespace", "v1", "namespaces", ("ns",), namespaced=False),
    KindInfo("Node", "v1", "nodes", ("no",), namespaced=False),
    KindInfo("Pod", "v1", "pods", ("po",)),
    KindInfo("Service", "v1", "services", ("svc",)),
    KindInfo("Endpoints", "v1", "endpoints", ("ep",), has_status=False),
    KindInfo("ReplicationController", "v1", "replicationcontrollers", ("rc",)),
    KindInfo("ConfigMap", "v1", "configmaps", ("cm",), has_status=False),
    KindInfo("Secret", "v1", "secrets", (), has_status=False),
    KindInfo("ServiceAccount", "v1", "serviceaccounts", ("sa",), has_status=False),
    KindInfo("ResourceQuota", "v1", "resourcequotas", ("quota",)),
    KindInfo("LimitRange", "v1", "limitranges", ("limits",), has_status=False),
    KindInfo("Event", "v1", "events", ("ev",), has_status=False),
    KindInfo("ReplicaSet", "apps/v1", "replicasets", ("rs",)),
    KindInfo("Deployment", "apps/v1", "deployments", ("deploy",)),
    KindInfo("DaemonSet", "apps/v1", "daemonsets", ("ds",)),
    KindInfo("ControllerRevision", "apps/v1", "controllerrevisions", (), has_status=False),
    KindInfo("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets", ("pdb",)),
    KindInfo("StatefulSet", "apps/v1", "statefulsets", ("sts",)),
    KindInfo("PersistentVolume", "v1", "persistentvolumes", ("pv",), namespaced=False),
    KindInfo("PersistentVolumeClaim", "v1", "persistentvolumeclaims", ("pvc",)),
    KindInfo("StorageClass", "storage.k8s.io/v1", "storageclasses", ("sc",), namespaced=False, has_status=False),
    KindInfo("Job", "batch/v1", "jobs"),
    KindInfo("CronJob", "batch/v1", "cronjobs", ("cj",)),
    KindInfo("HorizontalPodAutoscaler", "autoscaling/v2", "horizontalpodautoscalers", ("hpa",)),
    KindInfo("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", ("netpol",), has_status=False),
    KindInfo("Lease", "coordination.k8s.io/v1", "leases", (), has_status=False),
    KindInfo("EndpointSlice", "discovery.k8s.io/v1", "endpointslices", (), has_status=False),
    KindInfo("Role", "rbac.authorization.k8s.io/v1", "roles", (), has_status=False),
    KindInfo(
        "ClusterRole", "rbac.authorization.k8s.io/v1", "clusterroles", (), namespaced=False, has_status=False
    ),
    KindInfo("RoleBinding", "rbac.authorization.k8s.io/v1", "rolebindings", (), has_status=False),
    KindInfo(
        "ClusterRoleBinding",
        "rbac.authorization.k8s.io/v1",
        "clusterrolebindings",
        (),
        namespaced=False,
        has_status=False,
    ),
)

_BY_NAME: dict[str, KindInfo] = {}
for _info in KINDS:
    for _alias in (_info.kind, _info.kind.lower(), _info.plural, *_info.short_names):
        _BY_NAME[_alias.lower()] = _info
    # kubectl also accepts `kind.group` (e.g. `deployments.apps`)
    if _info.group:
        _BY_NAME[f"{_info.plural}.{_info.group}"] = _info


def lookup(name: str) -> KindInfo:
    """The kind a user or manifest means by `name` (case-insensitive; kind, plural or short name)."""
    info = _BY_NAME.get(name.strip().lower())
    if info is None:
        raise BadRequest(f'the server doesn\'t have a resource type "{name}"')
    return info


def for_manifest(api_version: str, kind: str) -> KindInfo:
    """The kind a manifest's `apiVersion`/`kind` pair names, exactly (no short forms, as the API)."""
    info = _BY_NAME.get(kind.lower()) if isinstance(kind, str) else None
    if info is None or info.kind != kind:
        raise BadRequest(f'no matches for kind "{kind}" in version "{api_version}"')
    if info.api_version != api_version:
        raise BadRequest(
            f'no matches for kind "{kind}" in version "{api_version}" (nbkube serves {kind} as {info.api_version})'
        )
    return info
