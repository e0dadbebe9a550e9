"""Reading a kubeconfig: where the API server is and which credential to present.

The CLI's `--kubeconfig` (and `$KUBECONFIG`) and `nbkube.connect(kubeconfig=...)` reach a cluster
through its API server instead of its store; this is the one reader of the file they share. It
takes what kubectl takes for the current (or named) context: the server URL, the CA (inline data or
a file), a client certificate and key (inline or files) or a bearer token, and the namespace.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any

import yaml

from nbkube.errors import BadRequest

__all__ = ["KubeconfigTarget", "default_kubeconfig_path", "load_kubeconfig"]


@dataclass(frozen=True)
class KubeconfigTarget:
    path: str
    context: str
    server: str
    ca_pem: bytes | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    token: str | None = None
    namespace: str = "default"
    insecure: bool = False


def default_kubeconfig_path() -> str | None:
    """The first file of $KUBECONFIG, if set (kubectl merges several; nbkube reads the first)."""
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return first or None


def _named(entries: Any, name: str, what: str, path: str) -> dict[str, Any]:
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(what)
            if isinstance(body, dict):
                return body
    raise BadRequest(f'{path}: no {what} named "{name}"')


def _data(section: dict[str, Any], key: str, path: str) -> bytes | None:
    """`<key>-data` (base64) or `<key>` (a file path, relative to the kubeconfig's folder)."""
    inline = section.get(f"{key}-data")
    if inline:
        try:
            return base64.b64decode(str(inline), validate=True)
        except ValueError:
            raise BadRequest(f"{path}: {key}-data is not valid base64") from None
    ref = section.get(key)
    if not ref:
        return None
    file = os.path.join(os.path.dirname(path), os.path.expanduser(str(ref)))
    try:
        with open(file, "rb") as f:
            return f.read()
    except OSError as e:
        raise BadRequest(f"{path}: {key} {file}: {e.strerror}") from None


def load_kubeconfig(path: str, context: str | None = None) -> KubeconfigTarget:
    """The target of `context` (default: current-context) in the kubeconfig at `path`."""
    path = os.path.abspath(os.path.expanduser(path))
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f.read(1024 * 1024))
    except OSError as e:
        raise BadRequest(f"{path}: cannot read the kubeconfig: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise BadRequest(f"{path}: not a valid kubeconfig: {' '.join(str(e).split())}") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"{path}: not a valid kubeconfig (expected a mapping)")
    name = context or doc.get("current-context")
    if not name:
        raise BadRequest(f"{path}: no current-context (name one with --context)")
    ctx = _named(doc.get("contexts"), str(name), "context", path)
    cluster = _named(doc.get("clusters"), str(ctx.get("cluster", "")), "cluster", path)
    user = _named(doc.get("users"), str(ctx.get("user", "")), "user", path) if ctx.get("user") else {}
    server = str(cluster.get("server") or "")
    if not server.startswith(("https://", "http://")):
        raise BadRequest(f'{path}: cluster "{ctx.get("cluster")}" has no https:// server')
    return KubeconfigTarget(
        path=path,
        context=str(name),
        server=server.rstrip("/"),
        ca_pem=_data(cluster, "certificate-authority", path),
        cert_pem=_data(user, "client-certificate", path),
        key_pem=_data(user, "client-key", path),
        token=str(user["token"]) if user.get("token") else None,
        namespace=str(ctx.get("namespace") or "default"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )
