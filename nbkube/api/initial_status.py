"""The `status` an object starts with, as the Kubernetes API server's create strategies set it.

kube-apiserver fills a fresh object's status on create (a Pod is `Pending` with its QoS class, a
Service has an empty `loadBalancer`, a ReplicationController counts 0 replicas, a Namespace is
`Active`), so clients that read a created object right back (the official Python client's typed
models, `kubectl create -o yaml`) see those fields before any controller wrote a status. The registry
calls `fill_initial_status` on every create; what the creator already put in `status` is kept
(nbkube's own components create some objects with their status), only missing fields are added.
`pod_qos_class` is also what the node agent reports.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from nbkube.api.meta import Obj
from nbkube.api.quantity import QuantityError, parse_decimal

__all__ = ["fill_initial_status", "pod_qos_class"]

_QOS_RESOURCES = ("cpu", "memory")


def _amount(value: Any) -> Decimal | None:
    try:
        return parse_decimal(value)
    except QuantityError:
        return None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def pod_qos_class(pod: Obj) -> str:
    """Guaranteed, Burstable or BestEffort, as upstream's GetPodQOS decides from the cpu and memory
    requests and limits of every container (init containers included)."""
    raw_spec = pod.get("spec")
    spec: dict[str, Any] = raw_spec if isinstance(raw_spec, dict) else {}
    containers: list[dict[str, Any]] = []
    for field in ("initContainers", "containers"):
        items = spec.get(field)
        if isinstance(items, list):
            containers.extend(c for c in items if isinstance(c, dict))
    any_set = False
    guaranteed = True
    for c in containers:
        res = _mapping(c.get("resources"))
        req, lim = _mapping(res.get("requests")), _mapping(res.get("limits"))
        for r in _QOS_RESOURCES:
            requested, limited = _amount(req.get(r)), _amount(lim.get(r))
            if (requested is not None and requested != 0) or (limited is not None and limited != 0):
                any_set = True
            # a request defaults to its limit, so only a different request breaks Guaranteed
            if limited is None or limited == 0 or (r in req and requested != limited):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed and containers else "Burstable"


def _pod(status: dict[str, Any], obj: Obj) -> None:
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", pod_qos_class(obj))


def _service(status: dict[str, Any], obj: Obj) -> None:
    status.setdefault("loadBalancer", {})


def _replicas(status: dict[str, Any], obj: Obj) -> None:
    status.setdefault("replicas", 0)


def _namespace(status: dict[str, Any], obj: Obj) -> None:
    status.setdefault("phase", "Active")


def _stateful_set(status: dict[str, Any], obj: Obj) -> None:
    status.setdefault("replicas", 0)
    status.setdefault("availableReplicas", 0)


def _phase_pending(status: dict[str, Any], obj: Obj) -> None:
    """PersistentVolume, PersistentVolumeClaim: Pending until the binder binds them."""
    status.setdefault("phase", "Pending")


def _empty(status: dict[str, Any], obj: Obj) -> None:
    """Deployment, ResourceQuota: `status: {}` (every field of theirs is omitted when zero)."""


def _daemon_set(status: dict[str, Any], obj: Obj) -> None:
    # upstream's DaemonSetStatus: these four counts are required (always written, even when 0)
    for key in ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady"):
        status.setdefault(key, 0)


def _pdb(status: dict[str, Any], obj: Obj) -> None:
    for key in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"):
        status.setdefault(key, 0)


_BY_KIND = {
    "Pod": _pod,
    "Service": _service,
    "ReplicationController": _replicas,
    "ReplicaSet": _replicas,
    "Namespace": _namespace,
    "Deployment": _empty,
    "DaemonSet": _daemon_set,
    "PodDisruptionBudget": _pdb,
    "Job": _empty,
    "CronJob": _empty,
    "ResourceQuota": _empty,
    "StatefulSet": _stateful_set,
    "PersistentVolume": _phase_pending, "PersistentVolumeClaim": _phase_pending,
}


def fill_initial_status(obj: Obj) -> None:
    """Add, in place, the status fields a new object of this kind starts with (none for kinds
    without such defaults, or whose `status` is not a mapping: validation names that)."""
    fn = _BY_KIND.get(str(obj.get("kind")))
    if fn is None:
        return
    status = obj.get("status")
    if status is None:
        status = obj["status"] = {}
    if isinstance(status, dict):
        fn(status, obj)
