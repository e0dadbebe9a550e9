"""Defaulting: fill in what Kubernetes fills in when a manifest leaves it out.

Run before validation by `serialization.load_manifests` and by the registry on create/update, so
stored objects look as they would in Kubernetes (`restartPolicy: Always`, `protocol: TCP`,
`targetPort` = `port`, an RC's selector from its template labels, ...). Every function is
idempotent (defaulting twice equals defaulting once) and tolerant: a field of the wrong type is left
alone for validation to report, never "fixed" or crashed on.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from nbkube.api import defaults_storage, kinds
from nbkube.api.defaulting import child_dict as _dict
from nbkube.api.defaulting import default_rolling_strategy
from nbkube.api.defaulting import set_default as _set
from nbkube.api.defaults_batch import default_cron_job, default_job
from nbkube.api.discovery import default_endpoint_slice
from nbkube.api.hpa import default_hpa
from nbkube.api.meta import Obj
from nbkube.errors import BadRequest

__all__ = [
    "NAMESPACE_NAME_LABEL",
    "apply_defaults",
    "default_pod_spec",
    "default_service_account",
    "DEFAULT_SERVICE_ACCOUNT",
    "image_pull_policy",
    "preserve_allocated",
]

DEFAULT_NAMESPACE = "default"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
DEFAULT_SCHEDULER = "default-scheduler"
DEFAULT_SERVICE_ACCOUNT = "default"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"


def _existing_dict(parent: Any, key: str) -> dict[str, Any] | None:
    if not isinstance(parent, dict):
        return None
    value = parent.get(key)
    return value if isinstance(value, dict) else None


def _dicts(parent: Any, key: str) -> list[dict[str, Any]]:
    items = parent.get(key) if isinstance(parent, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def apply_defaults(obj: Obj) -> Obj:
    """Default `obj` in place and return it. Objects of unknown kind are returned untouched."""
    if not isinstance(obj, dict):
        return obj
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return obj
    try:
        info = kinds.for_manifest(api_version, kind)
    except BadRequest:  # unknown kind: validation will say so
        return obj
    meta = _dict(obj, "metadata")
    if meta is not None and info.namespaced and not meta.get("namespace"):
        meta["namespace"] = DEFAULT_NAMESPACE
    fn = _BY_KIND.get(info.kind)
    if fn is not None:
        fn(obj)
    return obj


# --- pods --------------------------------------------------------------------------------------


def image_pull_policy(image: str) -> str:
    """`Always` for `:latest` or an untagged image (it may change), else `IfNotPresent`."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.rpartition(":")[2] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _default_probe(probe: dict[str, Any]) -> None:
    _set(probe, "timeoutSeconds", 1)
    _set(probe, "periodSeconds", 10)
    _set(probe, "successThreshold", 1)
    _set(probe, "failureThreshold", 3)
    http = _existing_dict(probe, "httpGet")
    if http is not None:
        _set(http, "path", "/")
        _set(http, "scheme", "HTTP")


def _default_container(c: dict[str, Any]) -> None:
    image = c.get("image")
    if isinstance(image, str) and image:
        _set(c, "imagePullPolicy", image_pull_policy(image))
    # a Go struct, never omitted: upstream objects always carry `resources: {}` (and kubectl
    # rollout undo sends it back), so a stored template must too, or two equal templates differ
    if c.get("resources") is None:
        c["resources"] = {}
    _set(c, "terminationMessagePath", TERMINATION_MESSAGE_PATH)
    _set(c, "terminationMessagePolicy", "File")
    for port in _dicts(c, "ports"):
        _set(port, "protocol", "TCP")
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = _existing_dict(c, key)
        if probe is not None:
            _default_probe(probe)
    for env in _dicts(c, "env"):
        field_ref = _existing_dict(_existing_dict(env, "valueFrom"), "fieldRef")
        if field_ref is not None:
            _set(field_ref, "apiVersion", "v1")


def default_pod_spec(spec: dict[str, Any]) -> None:
    """Defaults of a pod spec, for Pods and pod templates alike."""
    _set(spec, "restartPolicy", "Always")
    _set(spec, "dnsPolicy", "ClusterFirst")
    _set(spec, "terminationGracePeriodSeconds", 30)
    _set(spec, "schedulerName", DEFAULT_SCHEDULER)
    _set(spec, "securityContext", {})
    for key in ("containers", "initContainers"):
        for c in _dicts(spec, key):
            _default_container(c)
    for vol in _dicts(spec, "volumes"):
        if not any(k != "name" for k in vol):
            vol["emptyDir"] = {}
        for key in ("configMap", "secret"):
            src = _existing_dict(vol, key)
            if src is not None:
                _set(src, "defaultMode", 0o644)
    for tol in _dicts(spec, "tolerations"):
        # Kubernetes treats a missing operator as Equal; spelling it out keeps comparisons simple
        if tol.get("key") and tol.get("operator") in (None, ""):
            tol["operator"] = "Equal"


def default_service_account(spec: dict[str, Any]) -> None:
    """A Pod runs as ServiceAccount `default` unless it names one (upstream's ServiceAccount
    admission). `serviceAccount` is the deprecated spelling: it is read when `serviceAccountName`
    is empty and always mirrors it afterwards, as the v1 conversion does. Pods only: a template
    left alone keeps its pod-template-hash."""
    name = spec.get("serviceAccountName")
    if name is None or name == "":
        old = spec.get("serviceAccount")
        name = spec["serviceAccountName"] = old if isinstance(old, str) and old else DEFAULT_SERVICE_ACCOUNT
    if isinstance(name, str):
        spec["serviceAccount"] = name


def _default_pod(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    if spec is not None:
        default_pod_spec(spec)
        default_service_account(spec)


def _default_template(spec: dict[str, Any]) -> None:
    template = _existing_dict(spec, "template")
    pod_spec = _existing_dict(template, "spec")
    if pod_spec is not None:
        default_pod_spec(pod_spec)


# --- workloads -----------------------------------------------------------------------------------


def _default_rc(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    template = _existing_dict(spec, "template")
    tmeta = _existing_dict(template, "metadata")
    labels = _existing_dict(tmeta, "labels")
    if labels:
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        meta = _existing_dict(obj, "metadata")
        if meta is not None and not meta.get("labels"):
            meta["labels"] = dict(labels)
    _set(spec, "replicas", 1)
    _default_template(spec)


def _default_replica_set(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    _set(spec, "replicas", 1)
    _default_template(spec)


def _default_deployment(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    _set(spec, "replicas", 1)
    _set(spec, "revisionHistoryLimit", 10)
    _set(spec, "progressDeadlineSeconds", 600)
    default_rolling_strategy(spec, "strategy", maxUnavailable="25%", maxSurge="25%")
    _default_template(spec)


def _default_daemon_set(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    _set(spec, "revisionHistoryLimit", 10)
    default_rolling_strategy(spec, "updateStrategy", maxUnavailable=1, maxSurge=0)
    _default_template(spec)


# --- networking ----------------------------------------------------------------------------------


def _default_service(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    _set(spec, "type", "ClusterIP")
    _set(spec, "sessionAffinity", "None")
    if spec.get("sessionAffinity") == "ClientIP":
        client_ip = _dict(_dict(spec, "sessionAffinityConfig") or {}, "clientIP")
        if client_ip is not None:
            _set(client_ip, "timeoutSeconds", 10800)
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        _set(spec, "externalTrafficPolicy", "Cluster")
    if spec.get("type") != "ExternalName":
        _set(spec, "internalTrafficPolicy", "Cluster")
    for port in _dicts(spec, "ports"):
        _set(port, "protocol", "TCP")
        if port.get("targetPort") is None and port.get("port") is not None:
            port["targetPort"] = port["port"]


def _default_endpoints(obj: Obj) -> None:
    for subset in _dicts(obj, "subsets"):
        for port in _dicts(subset, "ports"):
            _set(port, "protocol", "TCP")


def _default_network_policy(obj: Obj) -> None:
    spec = _existing_dict(obj, "spec")
    if spec is None:
        return
    for direction in ("ingress", "egress"):
        for rule in _dicts(spec, direction):
            for port in _dicts(rule, "ports"):
                _set(port, "protocol", "TCP")
    if spec.get("policyTypes") is None:
        # as Kubernetes: a policy always restricts ingress; egress only when it lists egress rules
        spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def _default_namespace(obj: Obj) -> None:
    meta = _dict(obj, "metadata")
    name = meta.get("name") if meta is not None else None
    if meta is None or not isinstance(name, str) or not name:
        return
    labels = meta.get("labels")
    if labels is None:
        labels = meta["labels"] = {}
    if isinstance(labels, dict):
        # As Kubernetes 1.21+: every namespace carries its own name as a label, so a NetworkPolicy's
        # namespaceSelector can pick one namespace by name. Always set (never left to the writer),
        # so it cannot be spoofed to look like another namespace.
        labels[NAMESPACE_NAME_LABEL] = name


# --- config ----------------------------------------------------------------------------------


def _default_secret(obj: Obj) -> None:
    _set(obj, "type", "Opaque")
    string_data = obj.get("stringData")
    data = obj.get("data")
    # stringData is write-only: merge it into data (base64) as the API server does, when well-typed
    if (
        isinstance(string_data, dict)
        and (data is None or isinstance(data, dict))
        and all(isinstance(k, str) and isinstance(v, str) for k, v in string_data.items())
    ):
        merged = dict(data or {})
        for k, v in string_data.items():
            merged[k] = base64.b64encode(v.encode()).decode()
        obj["data"] = merged
        del obj["stringData"]


def _default_limit_range(obj: Obj) -> None:
    for item in _dicts(_existing_dict(obj, "spec"), "limits"):
        if item.get("type") != "Container":
            continue
        # as Kubernetes: default limit falls back to max, default request to the default limit
        max_ = _existing_dict(item, "max") or {}
        default = item.get("default")
        if default is None and max_:
            item["default"] = dict(max_)
        default = _existing_dict(item, "default") or {}
        if isinstance(default, dict) and default:
            request = _dict(item, "defaultRequest")
            if request is not None:
                for name, value in default.items():
                    request.setdefault(name, value)


def _default_binding(obj: Obj) -> None:
    # As rbac/v1's SetDefaults_Subject: User and Group subjects belong to the RBAC API group. A
    # RoleBinding's ServiceAccount subject without a namespace means one in the binding's namespace
    # (the authorizer reads it so too); written out here so that what is stored says so.
    namespace = (obj.get("metadata") or {}).get("namespace") if obj.get("kind") == "RoleBinding" else None
    for subject in _dicts(obj, "subjects"):
        if subject.get("kind") in ("User", "Group"):
            _set(subject, "apiGroup", "rbac.authorization.k8s.io")
        elif subject.get("kind") == "ServiceAccount" and isinstance(namespace, str) and namespace:
            _set(subject, "namespace", namespace)


_BY_KIND = {
    "Pod": _default_pod,
    "ReplicationController": _default_rc,
    "ReplicaSet": _default_replica_set,
    "Deployment": _default_deployment,
    "DaemonSet": _default_daemon_set,
    "Job": lambda obj: default_job(obj, _default_template),
    "CronJob": lambda obj: default_cron_job(obj, _default_template),
    "HorizontalPodAutoscaler": default_hpa,
    "Service": _default_service,
    "Endpoints": _default_endpoints,
    "EndpointSlice": default_endpoint_slice,
    "NetworkPolicy": _default_network_policy,
    "Namespace": _default_namespace,
    "Secret": _default_secret,
    "LimitRange": _default_limit_range,
    "RoleBinding": _default_binding,
    "ClusterRoleBinding": _default_binding,
    **defaults_storage.BY_KIND,
}


def preserve_allocated(new: Obj, old: Obj) -> Obj:
    """Copy server-set values from the stored `old` into an update `new` that leaves them out.

    A re-applied manifest does not carry the clusterIP and nodePorts the server allocated, nor the
    node the scheduler bound a pod to; Kubernetes keeps them, and so must an update before
    `validate_update` (which treats a change to them as an error). Mutates and returns `new`.
    """
    kind = new.get("kind") if isinstance(new, dict) else None
    new_spec, old_spec = _existing_dict(new, "spec"), _existing_dict(old, "spec")
    if new_spec is None or old_spec is None:
        return new
    if kind == "Pod" and old_spec.get("nodeName") and not new_spec.get("nodeName"):
        new_spec["nodeName"] = old_spec["nodeName"]
    if kind == "Service":
        if old_spec.get("clusterIP") and not new_spec.get("clusterIP"):
            new_spec["clusterIP"] = old_spec["clusterIP"]
            if old_spec.get("clusterIPs") is not None and new_spec.get("clusterIPs") is None:
                new_spec["clusterIPs"] = copy.deepcopy(old_spec["clusterIPs"])
        if new_spec.get("type", "ClusterIP") in ("NodePort", "LoadBalancer"):
            old_ports = {_port_key(p): p for p in _dicts(old_spec, "ports")}
            for p in _dicts(new_spec, "ports"):
                match = old_ports.get(_port_key(p))
                if match is not None and match.get("nodePort") and not p.get("nodePort"):
                    p["nodePort"] = match["nodePort"]
    return new


def _port_key(port: dict[str, Any]) -> tuple[str, str]:
    # str() keeps malformed (unhashable) values from crashing; validation reports them
    return str(port.get("port")), str(port.get("protocol") or "TCP")
