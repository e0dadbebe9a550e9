"""Chaos: `nbkube up` with 3 process nodes (and its default private etcd) killed with SIGKILL in the
middle of a scale, then started again on the same folder, under a bounded load probe of a NodePort
Service (tests/nbk_chaos.py runs the scenario).

What must hold: the pod processes outlive `up` (each in its own process group), every node adopts
its own pods (same pids, restartCount unchanged, no node reaping another's), nothing is evicted by a
control plane that saw the downtime's stale Leases, the NodePort answers again within 3 s of the
restart (its userspace proxy lives in `up`, so requests fail while `up` is down), and the new `up`
finishes the scale. Rootless: loopback addresses only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from nbk_chaos import assert_adopted, up_killed_mid_scale

from nbkube.node.runtime.process import find_busybox

pytestmark = pytest.mark.slow

SERVE = "d=$HOME/www; mkdir -p $d && echo ok > $d/index.html && exec httpd -f -p $POD_IP:8080 -h $d"
MANIFEST = f"""
apiVersion: v1
kind: ReplicationController
metadata: {{name: chaos}}
spec:
  replicas: 3
  selector: {{app: chaos}}
  template:
    metadata: {{labels: {{app: chaos}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: busybox
        command: [sh, -c, "{SERVE}"]
        env:
        - name: POD_IP
          valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
        ports: [{{containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: chaos}}
spec:
  type: NodePort
  selector: {{app: chaos}}
  ports: [{{port: 8080, targetPort: 8080}}]
"""


def test_up_killed_mid_scale_adopts_process_pods_and_answers_within_3s(tmp_path: Path) -> None:
    assert find_busybox() is not None, "the process runtime runs busybox-static"
    out = up_killed_mid_scale(tmp_path, "process", 3, MANIFEST, start=3, scaled=7)
    again = out.answered_again()
    assert again is not None, f"the NodePort never answered after the restart: {out.failed()[-3:]}"
    assert again < 3.0, f"the NodePort answered {again:.2f}s after the restart"
    assert_adopted(out)
