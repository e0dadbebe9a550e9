"""Shared helpers of the API server tests (a uniquely named module: `conftest` is ambiguous across
test dirs): one HTTP call to the test server, a bounded real-kubectl runner, a Pod manifest, and a
served cluster with the kubeconfig and home the real kubectl is run with."""

from __future__ import annotations

import contextlib
import copy
import http.client
import json
import os
import shutil
import ssl
import subprocess
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nbkube import examples
from nbkube.apiserver import ApiServer, serve
from nbkube.apiserver.authn import ADMIN_USER
from nbkube.apiserver.security import ADMIN_GROUPS
from nbkube.cluster import LocalCluster

KUBECTL = shutil.which("kubectl")
EXAMPLES = examples.folder()


class Kubectl:
    """Runs the real kubectl against the test server, each call bounded by a subprocess timeout."""

    def __init__(self, kubeconfig: str, home: str):
        self.kubeconfig = kubeconfig
        self.env = {**os.environ, "HOME": home, "KUBECONFIG": kubeconfig}

    def __call__(
        self, *args: str, timeout: float = 30, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        return subprocess.run(
            [KUBECTL, "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            cwd=EXAMPLES,
        )

    def ok(self, *args: str, timeout: float = 30, stdin: str | None = None) -> str:
        proc = self(*args, timeout=timeout, stdin=stdin)
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
        return proc.stdout


# By the PKI itself, held weakly: keyed by id(), a freed server's contexts (trusting its CA) were
# handed to a later server whose PKI happened to get the same id, and its handshakes failed.
_CONTEXTS: weakref.WeakKeyDictionary[Any, dict[tuple[str, tuple[str, ...]], ssl.SSLContext]] = (
    weakref.WeakKeyDictionary()
)


def tls(server: ApiServer, user: str | None = ADMIN_USER, groups: tuple[str, ...] = ADMIN_GROUPS) -> ssl.SSLContext:
    """A client TLS context for `server`: a certificate of its CA for `user` (None: no certificate)."""
    pki = server.gate.pki  # type: ignore[attr-defined]
    contexts = _CONTEXTS.setdefault(pki, {})
    key = (user or "", groups)
    if key not in contexts:
        if user is None:
            contexts[key] = pki.client_ssl_context()
        else:
            contexts[key] = pki.client_ssl_context(*pki.issue_client_cert(user, groups))
    return contexts[key]


def connect(server: ApiServer, user: str | None = ADMIN_USER, groups: tuple[str, ...] = ADMIN_GROUPS, timeout: float = 10) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("127.0.0.1", server.port, timeout=timeout, context=tls(server, user, groups))


def call(
    server: ApiServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str = "application/json",
    accept: str = "application/json",
    raw: bytes | None = None,
    user: str | None = ADMIN_USER,
    groups: tuple[str, ...] = ADMIN_GROUPS,
    token: str | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """One HTTPS request to the test server as `user` (the admin by default; None: no client
    certificate), or with a bearer `token`: (status code, decoded JSON or text, headers)."""
    conn = connect(server, None if token else user, groups)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Accept": accept}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if data is not None:
            headers["Content-Type"] = content_type
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode()
        ctype = resp.getheader("Content-Type") or ""
        decoded: Any = json.loads(text) if ctype.startswith("application/json") and text else text
        return resp.status, decoded, dict(resp.getheaders())
    finally:
        conn.close()


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
}


def pod(name: str = "web", **labels: str) -> dict[str, Any]:
    obj = copy.deepcopy(POD)
    obj["metadata"]["name"] = name
    if labels:
        obj["metadata"]["labels"] = labels
    return obj


@contextlib.contextmanager
def served(cluster: LocalCluster, folder: str | Path) -> Iterator[tuple[str, str]]:
    """Serve `cluster` until the block ends; yields (kubeconfig, kubectl home), both in `folder`."""
    srv = serve(cluster)
    try:
        home = os.path.join(str(folder), "home")
        os.mkdir(home)
        yield srv.write_kubeconfig(os.path.join(str(folder), "kubeconfig")), home
    finally:
        srv.stop()


@contextlib.contextmanager
def served_sim(folder: str | Path, nodes: int = 2) -> Iterator[tuple[str, str]]:
    """A served LocalCluster of `nodes` sim nodes on SQLite in `folder`: (kubeconfig, kubectl home)."""
    data_dir = os.path.join(str(folder), "cluster")
    with LocalCluster(nodes=nodes, runtime="sim", store="sqlite", data_dir=data_dir) as c, served(c, folder) as kube:
        yield kube
