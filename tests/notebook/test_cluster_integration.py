"""The notebook layer over a real LocalCluster (sim runtime, in-memory store): the dashboard shows
the RC's pods turning Ready on their nodes, its slider scales the RC through the controllers, its
kill button fails a node, and the views and magics read the same cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nbk_nbtest import CountingComm, wait_for

from nbkube.notebook.dashboard import dashboard_for
from nbkube.notebook.views import ClusterViews

cluster_mod = pytest.importorskip("nbkube.cluster")

RC = """
apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: 4
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: busybox}]
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Any]:
    c = cluster_mod.LocalCluster(nodes=2, runtime="sim", store="memory", data_dir=str(tmp_path))
    yield c
    c.stop()


def _chips(d: Any, marker: str) -> int:
    return sum(col.pods.value.count(marker) for col in d._columns.values())


def test_dashboard_over_a_local_cluster(cluster: Any, comms: list[CountingComm]) -> None:
    cluster.apply(RC)
    d = dashboard_for(cluster, throttle=0.05)
    try:
        wait_for(lambda: _chips(d, "nbk-green") == 4, 20, "4 ready pods shown green")
        assert list(d._columns) == ["node-1", "node-2"]
        df = ClusterViews(cluster.api).pods.df
        assert len(df) == 4 and set(df["phase"]) == {"Running"} and set(df["node"]) <= {"node-1", "node-2"}

        d.replicas.value = 2
        wait_for(lambda: _chips(d, "nbk-chip") == 2, 20, "scaled down to 2 chips")

        d.node.value = "node-1"
        d.buttons["kill"].click()
        wait_for(lambda: "NotReady" in d._columns["node-1"].header.value, 30, "killed node shown NotReady")
        assert "nbk-red" in d._columns["node-1"].header.value
    finally:
        d.stop()
