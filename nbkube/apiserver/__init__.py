"""nbkube's Kubernetes-compatible HTTP API, so the real kubectl and client libraries can drive it.

The layer sits above the cluster and the registry and below the CLI, notebook and experiments,
which start it (`nbkube up --api-port`, or `serve(cluster)` in a notebook). Loopback only, no auth.
"""

from __future__ import annotations

from typing import Any

from nbkube.apiserver.kubeconfig import write_kubeconfig
from nbkube.apiserver.server import ApiServer
from nbkube.registry.registry import Registry

__all__ = ["ApiServer", "serve", "write_kubeconfig"]


def serve(cluster_or_registry: Any, port: int = 0) -> ApiServer:
    """Start an ApiServer over a Registry, or over anything with one as `.api` (a LocalCluster)."""
    registry = cluster_or_registry
    if not isinstance(registry, Registry):
        registry = getattr(cluster_or_registry, "api", None)
    if not isinstance(registry, Registry):
        raise TypeError(
            f"serve() needs a Registry or a cluster with .api, got {type(cluster_or_registry).__name__}"
        )
    return ApiServer(registry, port=port).start()
