"""Kubeconfig files: reading one (where the API server is, which credential to present) and writing one.

The CLI's `--kubeconfig` (and `$KUBECONFIG`) and `RestClient` reach a cluster through its API server
instead of its store; `load_kubeconfig()` resolves a context to a `KubeconfigTarget` (server, CA,
client certificate and key or token, namespace), reading both the `*-data` fields and the
file-path forms kubectl accepts. What it cannot honour (`insecure-skip-tls-verify` on HTTPS, exec
and auth-provider plugins, basic auth) is refused with one line naming the file, never ignored.
Writing them lives here too, below everything that hands out credentials (the API server's admin
kubeconfig, `nbkube tenant create`): `kubeconfig()` builds one cluster, one user and one context
(the server URL, the cluster CA as `certificate-authority-data`, a client certificate and key or a
bearer token); `write_kubeconfig()` saves it 0600 (a new folder 0700) through a temporary file
renamed into place, so the credential is never readable by others, not even for a moment.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

from nbkube.errors import BadRequest
from nbkube.security.files import ensure_private_dir, write_private

__all__ = [
    "KubeconfigError",
    "KubeconfigTarget",
    "default_kubeconfig_path",
    "kubeconfig",
    "kubeconfig_from_env",
    "load_kubeconfig",
    "write_kubeconfig",
]


class KubeconfigError(BadRequest):
    """A kubeconfig that cannot be used; `str()` names the file and what is wrong."""


def kubeconfig_from_env() -> str | None:
    """The first file of $KUBECONFIG when it is set (the CLI then works through the API)."""
    entry = next((e.strip() for e in os.environ.get("KUBECONFIG", "").split(os.pathsep) if e.strip()), "")
    return os.path.abspath(os.path.expanduser(entry)) if entry else None


# -- writing ---


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


# -- reading ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubeconfigTarget:
    """Where and as whom a kubeconfig context connects. `ca_pem` None = the system's trusted CAs
    (a cluster with a public certificate); nbkube's own kubeconfigs always carry their CA."""

    server: str
    ca_pem: bytes | None
    cert_pem: bytes | None
    key_pem: bytes | None
    token: str | None
    namespace: str
    context: str = ""
    path: str = ""


def default_kubeconfig_path() -> str:
    """The file kubectl would read: the first entry of $KUBECONFIG, else ~/.kube/config."""
    for entry in os.environ.get("KUBECONFIG", "").split(os.pathsep):
        if entry.strip():
            return os.path.abspath(os.path.expanduser(entry.strip()))
    return os.path.expanduser(os.path.join("~", ".kube", "config"))


class _Reader:
    def __init__(self, path: str):
        self.path = path
        self.folder = os.path.dirname(path)

    def fail(self, message: str) -> KubeconfigError:
        return KubeconfigError(f"kubeconfig {self.path}: {message}")

    def load(self) -> dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = yaml.safe_load(f)
        except FileNotFoundError:
            raise self.fail("no such file") from None
        except IsADirectoryError:
            raise self.fail("is a folder, not a file") from None
        except PermissionError:
            raise self.fail("permission denied") from None
        except UnicodeDecodeError:
            raise self.fail("not text (UTF-8)") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise self.fail(f"not valid YAML{where}: {problem}") from None
        if not isinstance(doc, dict):
            raise self.fail("not a kubeconfig (want a mapping with clusters, users and contexts)")
        return doc

    def named(self, doc: dict[str, Any], section: str, name: str, body: str) -> dict[str, Any]:
        entries = doc.get(section) or []
        if not isinstance(entries, list):
            raise self.fail(f"{section}: must be a list")
        for entry in entries:
            if isinstance(entry, dict) and entry.get("name") == name:
                value = entry.get(body) or {}
                if not isinstance(value, dict):
                    raise self.fail(f"{section}[{name}].{body}: must be a mapping")
                return value
        known = ", ".join(str(e.get("name")) for e in entries if isinstance(e, dict)) or "none"
        raise self.fail(f"no {section[:-1]} named {name!r} (there are: {known})")

    def data(self, entry: dict[str, Any], where: str, data_key: str, file_key: str) -> bytes | None:
        """The bytes of `data_key` (base64) or of the file `file_key` names (relative to the kubeconfig)."""
        if entry.get(data_key):
            try:
                return base64.b64decode(str(entry[data_key]), validate=True)
            except (binascii.Error, ValueError):
                raise self.fail(f"{where}.{data_key}: not valid base64") from None
        return self.file(entry, where, file_key)

    def file(self, entry: dict[str, Any], where: str, key: str) -> bytes | None:
        """The content of the file `entry[key]` names (relative paths: from the kubeconfig's folder)."""
        if not entry.get(key):
            return None
        target = os.path.join(self.folder, os.path.expanduser(str(entry[key])))
        try:
            with open(target, "rb") as f:
                return f.read()
        except OSError as exc:
            raise self.fail(f"{where}.{key}: cannot read {target}: {exc.strerror}") from None


_UNSUPPORTED_USER = {
    "exec": "exec credential plugins",
    "auth-provider": "auth-provider plugins",
    "username": "basic auth",
    "password": "basic auth",
    "as": "impersonation",
}


def load_kubeconfig(path: str | None = None, context: str | None = None) -> KubeconfigTarget:
    """The connection a kubeconfig's `context` (default: its current-context) describes.

    `path` None reads what kubectl reads (`default_kubeconfig_path`). Every problem raises
    `KubeconfigError` with one line naming the file.
    """
    file = os.path.abspath(os.path.expanduser(path)) if path else default_kubeconfig_path()
    r = _Reader(file)
    doc = r.load()
    name = context or doc.get("current-context")
    if not name or not isinstance(name, str):
        raise r.fail("no current-context; name a context")
    ctx = r.named(doc, "contexts", name, "context")
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if not cluster_name or not isinstance(cluster_name, str):
        raise r.fail(f"context {name!r} names no cluster")
    cluster = r.named(doc, "clusters", cluster_name, "cluster")
    server = cluster.get("server")
    parts = urlsplit(server) if isinstance(server, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise r.fail(f"cluster {cluster_name!r}: server must be an http:// or https:// URL, got {server!r}")
    if parts.scheme == "https" and cluster.get("insecure-skip-tls-verify"):
        raise r.fail(
            f"cluster {cluster_name!r}: insecure-skip-tls-verify is not supported; "
            "give certificate-authority-data"
        )
    where = f"clusters[{cluster_name}].cluster"
    ca_pem = r.data(cluster, where, "certificate-authority-data", "certificate-authority")
    cert_pem = key_pem = None
    token: str | None = None
    if user_name:
        user = r.named(doc, "users", str(user_name), "user")
        for key, what in _UNSUPPORTED_USER.items():
            if user.get(key):
                raise r.fail(
                    f"user {user_name!r}: {what} ({key}) not supported; use a client certificate or token"
                )
        where = f"users[{user_name}].user"
        cert_pem = r.data(user, where, "client-certificate-data", "client-certificate")
        key_pem = r.data(user, where, "client-key-data", "client-key")
        if (cert_pem is None) != (key_pem is None):
            raise r.fail(f"user {user_name!r}: a client certificate needs its key and the other way round")
        if user.get("token"):
            token = str(user["token"])
        else:
            from_file = r.file(user, where, "tokenFile")
            token = from_file.decode("utf-8", "replace").strip() if from_file is not None else None
    namespace = ctx.get("namespace") or "default"
    return KubeconfigTarget(
        server=str(server).rstrip("/"),
        ca_pem=ca_pem,
        cert_pem=cert_pem,
        key_pem=key_pem,
        token=token or None,
        namespace=str(namespace),
        context=name,
        path=file,
    )
