"""nbkube's Kubernetes-compatible HTTP API, so the real kubectl and client libraries can drive it.

The layer sits above the cluster and the registry and below the CLI, notebook and experiments,
which start it (`nbkube up --api-port`, or `serve(cluster)` in a notebook). HTTPS only, with the
cluster's certificates; every request authenticated (client certificates, bearer tokens) and
authorized (RBAC), see security.py.
"""

from __future__ import annotations

import os
from typing import Any

from nbkube.apiserver.kubeconfig import write_kubeconfig
from nbkube.apiserver.security import cluster_gate
from nbkube.apiserver.server import ApiServer
from nbkube.client.apiserverinfo import forget_api_server, record_api_server
from nbkube.errors import BadRequest
from nbkube.registry.registry import Registry

__all__ = ["ApiServer", "serve", "write_kubeconfig"]


def serve(cluster_or_registry: Any, port: int = 0, *, host: str = "127.0.0.1", folder: str | None = None) -> ApiServer:
    """Start an HTTPS ApiServer over a Registry, or over anything with one as `.api` (a
    LocalCluster). Its certificates live in `folder`, by default `pki/` in the cluster's folder;
    its URL is recorded in the cluster's folder (`apiserver.json`, see
    nbkube/client/apiserverinfo.py) until it stops."""
    registry = cluster_or_registry
    if not isinstance(registry, Registry):
        registry = getattr(cluster_or_registry, "api", None)
    if not isinstance(registry, Registry):
        raise TypeError(
            f"serve() needs a Registry or a cluster with .api, got {type(cluster_or_registry).__name__}"
        )
    if folder is None:
        if not registry.credentials_dir:
            raise BadRequest("serve(): this registry has no cluster folder for the API server's certificates; give folder=")
        folder = os.path.join(registry.credentials_dir, "pki")
    gate = cluster_gate(registry, folder, [host])
    try:
        server = ApiServer(registry, gate, host=host, port=port).start()
    except BaseException:
        gate.stop()
        raise
    cluster_folder = registry.credentials_dir
    if cluster_folder:
        # so that processes holding only the store (`nbkube tenant create`) know the server's URL
        url = server.url
        try:
            record_api_server(cluster_folder, url)
        except BaseException:
            server.stop()
            raise
        server.stop_hooks.append(lambda: forget_api_server(cluster_folder, url))
    return server
