"""A 10 s etcd outage under a running cluster: it recovers by itself, and the operator reads a few
lines naming the cause, not a traceback per retry (nbkube/logutil.py). A real etcd subprocess,
frozen with SIGSTOP and thawed with SIGCONT; simulated nodes."""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

import pytest
from nbk_clustertest import wait_until

from nbkube.cluster import LocalCluster
from nbkube.store.etcd_server import launch_etcd


def _rc(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"app": name},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]},
            },
        },
    }


def _running(cluster: LocalCluster, app: str, count: int) -> bool:
    pods = cluster.api.list("Pod", "default", label_selector=f"app={app}")[0]
    return len(pods) == count and all((p.get("status") or {}).get("phase") == "Running" for p in pods)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.slow
def test_cluster_rides_out_a_10s_etcd_outage_quietly(tmp_path: Any, etcd_binary: None) -> None:
    etcd = launch_etcd(str(tmp_path / "etcd"))
    collect = _Collect()
    logger = logging.getLogger("nbkube")
    cluster = LocalCluster(nodes=2, runtime="sim", store=etcd.url, data_dir=str(tmp_path / "c"))
    try:
        cluster.api.create(_rc("before", 3))
        wait_until(lambda: _running(cluster, "before", 3), 30, "3 pods running before the outage")
        logger.addHandler(collect)
        etcd.proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(10)
        finally:
            etcd.proc.send_signal(signal.SIGCONT)
        # recovers by itself: a change made after the outage is carried out
        wait_until(lambda: cluster.api.list("Node")[0], 30, "the store answering again")
        cluster.api.create(_rc("after", 2))
        wait_until(lambda: _running(cluster, "after", 2), 60, "2 new pods running after the outage")
        assert _running(cluster, "before", 3)
        nodes = cluster.api.list("Node")[0]
        wait_until(
            lambda: all(
                c.get("status") == "True"
                for n in cluster.api.list("Node")[0]
                for c in n["status"]["conditions"]
                if c.get("type") == "Ready"
            ),
            30,
            "both nodes Ready",
        )
        assert len(nodes) == 2
    finally:
        logger.removeHandler(collect)
        cluster.stop()
        etcd.stop()
    lines = [f"{r.name}: {r.getMessage()}" for r in collect.records]
    assert len(lines) <= 20, "\n".join(lines)
    assert not [r for r in collect.records if r.exc_info], "\n".join(lines)
