"""Kubeconfig files: writing them for kubectl and the Python client, and reading them back.

`kubeconfig()` builds one cluster, one user and one context: the server URL, the cluster CA
(`certificate-authority-data`, base64 as kubectl wants) for HTTPS, and the user's credential (a
client certificate and key, or a bearer token; `pki.ClusterPKI` and `authn.Authenticator` make
them). `write_kubeconfig()` saves it 0600 (a new folder 0700) through a temporary file renamed
into place, so the credential is never readable by others, not even for a moment.

Reading them back is the client layer's (nbkube/client/kubeconfig.py).
"""

from __future__ import annotations

import base64
import os
from typing import Any
from urllib.parse import urlsplit

import yaml

from nbkube.security.files import ensure_private_dir, write_private

__all__ = ["kubeconfig", "write_kubeconfig"]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def kubeconfig(
    server_url: str,
    ca_pem: bytes | None,
    *,
    user: str,
    client_cert_pem: bytes | None = None,
    client_key_pem: bytes | None = None,
    token: str | None = None,
    namespace: str = "default",
    context: str = "nbkube",
) -> dict[str, Any]:
    """The kubeconfig document for `user` at `server_url`; `ca_pem` is required for https."""
    scheme = urlsplit(server_url).scheme
    if scheme not in ("http", "https"):
        raise ValueError(f"kubeconfig: server URL {server_url!r} is neither http:// nor https://")
    if scheme == "https" and not ca_pem:
        raise ValueError("kubeconfig: an https server needs the cluster CA (ca_pem)")
    if (client_cert_pem is None) != (client_key_pem is None):
        raise ValueError("kubeconfig: give the client certificate and its key together")
    if token is not None and client_cert_pem is not None:
        raise ValueError("kubeconfig: give a client certificate or a token, not both")
    if scheme == "http" and (token is not None or client_cert_pem is not None):
        raise ValueError("kubeconfig: credentials would cross plain http in clear; use an https server")
    if not user or not context:
        raise ValueError("kubeconfig: user and context names may not be empty")
    cluster: dict[str, Any] = {"server": server_url}
    if ca_pem:
        cluster["certificate-authority-data"] = _b64(ca_pem)
    credentials: dict[str, Any] = {}
    if client_cert_pem is not None and client_key_pem is not None:
        credentials["client-certificate-data"] = _b64(client_cert_pem)
        credentials["client-key-data"] = _b64(client_key_pem)
    if token is not None:
        credentials["token"] = token
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {"name": context, "context": {"cluster": context, "user": user, "namespace": namespace}}
        ],
        "current-context": context,
        "preferences": {},
    }


def write_kubeconfig(
    path: str,
    server_url: str,
    context: str = "nbkube",
    *,
    ca_pem: bytes | None = None,
    user: str | None = None,
    client_cert_pem: bytes | None = None,
    client_key_pem: bytes | None = None,
    token: str | None = None,
    namespace: str = "default",
) -> str:
    """Write a kubeconfig to `path` (0600; its folder made 0700 if missing) and return the path.

    Without credentials it is the plain-http loopback kubeconfig (user entry named after the context).
    """
    path = os.path.abspath(os.path.expanduser(path))
    doc = kubeconfig(
        server_url,
        ca_pem,
        user=user or context,
        client_cert_pem=client_cert_pem,
        client_key_pem=client_key_pem,
        token=token,
        namespace=namespace,
        context=context,
    )
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        ensure_private_dir(folder)
    write_private(path, yaml.safe_dump(doc, sort_keys=False).encode())
    return path
