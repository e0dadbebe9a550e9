"""Shared helpers of the API server tests (a uniquely named module: `conftest` is ambiguous across
test dirs): one HTTP call to the test server, a bounded real-kubectl runner, a Pod manifest."""

from __future__ import annotations

import copy
import http.client
import json
import os
import shutil
import subprocess
from typing import Any

from nbkube import examples
from nbkube.apiserver import ApiServer

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


def call(
    server: ApiServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str = "application/json",
    accept: str = "application/json",
    raw: bytes | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """One HTTP request to the test server: (status code, decoded JSON or text, headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Accept": accept}
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
