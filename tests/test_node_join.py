"""`nbkube node join`: a node agent of this machine joins a cluster running elsewhere (its store)."""

from __future__ import annotations

import time

import pytest

from nbkube.cli import main
from nbkube.cluster import JoinedNode, LocalCluster, free_node_index


def _wait(predicate, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_a_joined_node_registers_gets_the_next_cidr_and_runs_pods(tmp_path):
    with LocalCluster(
        nodes=2, runtime="sim", store="sqlite", data_dir=str(tmp_path / "c"), name="j"
    ) as cluster:
        assert free_node_index(cluster.api, "edge-1") == 3
        joined = JoinedNode(cluster.api, "edge-1", runtime="sim", state_dir=str(tmp_path / "edge")).start()
        try:
            _wait(lambda: cluster._node_ready("edge-1"))
            node = cluster.api.get("Node", "edge-1")
            assert node["spec"]["podCIDR"] == "10.244.3.0/24"
            # a re-join keeps its number
            assert free_node_index(cluster.api, "edge-1") == 3
            # pinned by its hostname label, which the joined agent registers: cordoning the other
            # nodes instead raced the scheduler's node informer (it could place the pod before it
            # saw the cordon)
            cluster.apply(
                "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
                "  nodeSelector: {kubernetes.io/hostname: edge-1}\n"
                "  containers: [{name: c, image: busybox}]\n"
            )
            _wait(
                lambda: (cluster.api.get("Pod", "p", "default").get("status") or {}).get("phase") == "Running"
            )
            assert cluster.api.get("Pod", "p", "default")["spec"]["nodeName"] == "edge-1"
        finally:
            joined.stop()


def test_join_without_a_store_is_a_one_line_error(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("NBKUBE_STORE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["node", "join", "--name", "edge-1", "--runtime", "sim"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--store" in err[0]


@pytest.mark.slow
def test_join_verb_runs_and_leaves(capsys, tmp_path):
    url = f"sqlite://{tmp_path}/store.db"
    rc = main(["--store", url, "node", "join", "--name", "edge-2", "--runtime", "sim", "--duration", "1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "node/edge-2 joined" in out and "leaving" in out


def test_a_joined_node_reports_metrics_through_the_api_server(tmp_path):
    from nbkube.apiserver import serve
    from nbkube.client import metrics as metrics_client

    with LocalCluster(nodes=1, runtime="sim", store="sqlite", data_dir=str(tmp_path / "c"), name="jm") as cluster:
        server = serve(cluster)
        try:
            kc = server.write_kubeconfig(str(tmp_path / "kubeconfig"))
            # a Registry of its own over the same store, as `nbkube node join --store` opens one
            from nbkube.registry.registry import Registry
            from nbkube.store import open_store

            own = Registry(open_store(cluster.store_url))
            joined = JoinedNode(own, "edge-1", runtime="sim", state_dir=str(tmp_path / "edge"), metrics_kubeconfig=kc)
            joined.start()
            try:
                cluster.apply(  # on the joined node (see the test above for why not by cordon)
                    "apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {sim.nbkube.io/cpu: 300m}}\n"
                    "spec:\n  nodeSelector: {kubernetes.io/hostname: edge-1}\n"
                    "  containers: [{name: c, image: busybox}]\n"
                )
                _wait(lambda: metrics_client.pod_metrics(cluster.api, "default"), timeout=20)
                [m] = metrics_client.pod_metrics(cluster.api, "default")
                cpu = int(m["containers"][0]["usage"]["cpu"][:-1])
                assert m["metadata"]["name"] == "p" and abs(cpu - 300_000_000) < 5_000_000, m
                assert own.metrics.pods() == []  # nothing kept in the joining process
            finally:
                joined.stop()
                own.close()
        finally:
            server.stop()
