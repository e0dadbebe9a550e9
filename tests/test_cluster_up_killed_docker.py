"""Chaos: `nbkube up` with 2 Docker nodes killed with SIGKILL in the middle of a scale, then started
again on the same folder, while a bounded load probe keeps asking a NodePort Service
(tests/nbk_chaos.py runs the scenario).

What must hold: the containers outlive the process (they are Docker's), the restart adopts them
(same pods, same container ids, restartCount unchanged; nothing evicted by a control plane that saw
the downtime's stale Leases), the Service never stops answering (zero failed requests: the nodes'
iptables rules stay in their namespaces while nobody runs them), and the scale the killed process
began is finished by the new one. Needs root and Docker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nbk_chaos import assert_adopted, up_killed_mid_scale

from nbkube.node.runtime.docker import LABEL_CONTAINER, LABEL_POD_UID

pytestmark = [pytest.mark.docker, pytest.mark.slow]

MANIFEST = """
apiVersion: v1
kind: ReplicationController
metadata: {name: chaos}
spec:
  replicas: 2
  selector: {app: chaos}
  template:
    metadata: {labels: {app: chaos}}
    spec:
      containers:
      - name: web
        image: busybox
        command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 80 -h /www"]
        ports: [{containerPort: 80}]
        readinessProbe: {httpGet: {path: /index.html, port: 80}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: chaos}
spec:
  type: NodePort
  selector: {app: chaos}
  ports: [{port: 80, targetPort: 80}]
"""


def test_up_killed_mid_scale_adopts_docker_pods_without_losing_a_request(
    tmp_path: Path, docker_client: Any
) -> None:
    def one_container_each(uids: set[str]) -> None:
        """At Docker too: the restart started no second copy of any pod's container."""
        for uid in uids:
            found = docker_client.containers.list(all=True, filters={"label": f"{LABEL_POD_UID}={uid}"})
            workers = [c for c in found if c.labels.get(LABEL_CONTAINER) == "web"]
            assert len(workers) == 1, f"pod {uid}: {len(workers)} web containers"

    out = up_killed_mid_scale(
        tmp_path, "docker", 2, MANIFEST, start=2, scaled=6, while_running=one_container_each
    )
    failed = out.failed()
    assert not failed, (
        f"{len(failed)} of {len(out.results)} requests failed (seconds from the kill, restart at "
        f"{out.restarted_at - out.killed_at:.2f}): first {failed[:3]}, last {failed[-1:]}"
    )
    times = [t for t, _ in out.results]
    assert times[-1] > out.restarted_at, "the probe ran past the restart"
    longest = max(b - a for a, b in zip(times, times[1:], strict=False))
    assert longest < 3.0, f"the NodePort did not answer for {longest:.2f}s"
    assert_adopted(out)
