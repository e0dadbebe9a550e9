"""Helpers the whole-cluster tests share (tests/test_cluster_*.py, tests/test_node_join_*.py).

Real clusters need polling: `wait_until` bounds it and says what was awaited when it runs out.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """The predicate's first truthy value, or AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(interval)


def pod_ready(pod: dict) -> bool:
    """Whether the pod's Ready condition is True."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def httpd_pod(name: str, node: str, port: int, host_port: int | None = None, root: str = "w") -> dict:
    """A busybox httpd pod pinned to `node` that answers with its own name on `port`."""
    ports: dict[str, int] = {"containerPort": port}
    if host_port is not None:
        ports["hostPort"] = host_port
    serve = f"mkdir -p {root} && echo {name} > {root}/index.html && exec httpd -f -p {port} -h {root}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": node,
            "containers": [
                {"name": "web", "image": "busybox", "command": ["sh", "-c", serve], "ports": [ports]}
            ],
        },
    }


def get_or_empty(url: str, timeout: float = 1.0) -> str:
    """The body of GET `url`, stripped; "" when nothing answers (refused, reset, timed out)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return str(resp.read().decode().strip())
    except OSError:
        return ""
