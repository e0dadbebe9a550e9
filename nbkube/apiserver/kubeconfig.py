"""A kubeconfig file pointing kubectl (or the Python client) at an nbkube API server.

Plain http on loopback and no credentials: the file says only where the server is, which context
is current and which namespace to default to.
"""

from __future__ import annotations

import os

import yaml

__all__ = ["kubeconfig", "write_kubeconfig"]


def kubeconfig(server_url: str, context: str = "nbkube", namespace: str = "default") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server_url, "insecure-skip-tls-verify": True}}],
        "users": [{"name": context, "user": {}}],
        "contexts": [
            {"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}
        ],
        "current-context": context,
        "preferences": {},
    }


def write_kubeconfig(path: str, server_url: str, context: str = "nbkube") -> str:
    """Write the kubeconfig to `path` (folders created, mode 0600 as kubectl expects) and return it."""
    path = os.path.abspath(os.path.expanduser(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(kubeconfig(server_url, context), f, sort_keys=False)
    return path
