"""The admission chain every nbkube Registry is built with.

`cluster.py` (LocalCluster, `nbkube up`), the CLI and tests call `default_admission_plugins()` and
pass the list to `Registry(store, admission=...)`. Order matters, as in Kubernetes' plugin order:
mutating plugins first (LimitRange fills container requests/limits), then Pod Security (it only
refuses or warns, and does so before anything is claimed or charged), then the Service allocator
(claims ClusterIP/NodePorts, the last mutation, so a refusal before it claims nothing), then
validating quota admission, which charges what will really be stored. When a later plugin or the
write refuses, the registry calls `rollback` on the earlier ones (see admission.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from nbkube.registry.admission import AdmissionPlugin
from nbkube.registry.admission_limitrange import LimitRanger
from nbkube.registry.admission_podsecurity import PodSecurityAdmission, PodSecurityConfig
from nbkube.registry.admission_quota import QuotaAdmission
from nbkube.registry.admission_service import NODE_PORT_RANGE, SERVICE_CIDR, ServiceAllocator

__all__ = ["default_admission_plugins"]


def default_admission_plugins(
    *,
    service_cidr: str = SERVICE_CIDR,
    node_port_range: tuple[int, int] = NODE_PORT_RANGE,
    pod_security: PodSecurityConfig | str | Mapping[str, str] | None = None,
) -> list[AdmissionPlugin]:
    """Fresh plugin instances (each keeps per-process state: allocation cursors, pending charges).

    `pod_security`: the cluster-wide Pod Security defaults (see `parse_pod_security`: a level such
    as "baseline" for enforce, or "enforce=baseline,warn=restricted"); None is upstream's default,
    privileged in every mode."""
    return [
        LimitRanger(),
        PodSecurityAdmission(pod_security),
        ServiceAllocator(service_cidr, node_port_range),
        QuotaAdmission(),
    ]
