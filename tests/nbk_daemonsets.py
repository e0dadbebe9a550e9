"""Manifests the DaemonSet tests share (tests/apiserver/test_kubectl_daemonsets.py on sim nodes,
tests/test_daemonsets_runtimes.py on process and Docker nodes): a daemon `agent` on every node, a
2-replica `web` Deployment for a drain to evict, and `web-pdb`, the budget that stops the drain."""

from __future__ import annotations

DAEMONSET = """apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: busybox, command: [sleep, "3600"]}]
"""
WEB = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: busybox, command: [sleep, "3600"]}]
"""
WEB_PDB = """apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web-pdb}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: web}}
"""
