"""Starting and stopping: serve() over a registry or a cluster, the kubeconfig, loopback only."""

from __future__ import annotations

import os
from typing import Any

import pytest
import yaml
from nbk_apitest import call

from nbkube.apiserver import ApiServer, serve
from nbkube.cluster import LocalCluster
from nbkube.errors import BadRequest
from nbkube.registry.registry import Registry


def test_serve_registry_and_stop(registry: Registry) -> None:
    srv = serve(registry)
    try:
        assert srv.url.startswith("http://127.0.0.1:") and srv.port > 0
        assert call(srv, "GET", "/healthz")[0] == 200
    finally:
        srv.stop()
    srv.stop()  # idempotent


def test_serve_cluster_sees_its_nodes(tmp_path: Any) -> None:
    cluster = LocalCluster(nodes=2, runtime="sim", store="sqlite", data_dir=str(tmp_path))
    try:
        with serve(cluster) as srv:
            _, nodes, _ = call(srv, "GET", "/api/v1/nodes")
            assert sorted(n["metadata"]["name"] for n in nodes["items"]) == ["node-1", "node-2"]
    finally:
        cluster.stop()


def test_serve_rejects_other_things() -> None:
    with pytest.raises(TypeError):
        serve(object())


def test_only_loopback(registry: Registry) -> None:
    with pytest.raises(BadRequest):
        ApiServer(registry, host="0.0.0.0")


def test_kubeconfig(server: ApiServer, tmp_path: Any) -> None:
    path = server.write_kubeconfig(str(tmp_path / "sub" / "config"))
    assert os.stat(path).st_mode & 0o777 == 0o600
    with open(path) as f:
        cfg = yaml.safe_load(f)
    assert cfg["current-context"] == "nbkube"
    assert cfg["clusters"][0]["cluster"]["server"] == server.url
