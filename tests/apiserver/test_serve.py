"""Starting and stopping: serve() over a registry or a cluster, HTTPS only, every request
authenticated and authorized, the admin kubeconfig."""

from __future__ import annotations

import http.client
import os
import ssl
from typing import Any

import pytest
import yaml
from nbk_apitest import call, tls

from nbkube.apiserver import ApiServer, serve
from nbkube.cluster import LocalCluster
from nbkube.errors import BadRequest
from nbkube.registry.registry import Registry
from nbkube.security.pki import ClusterPKI


def test_serve_registry_and_stop(registry: Registry, tmp_path: Any) -> None:
    srv = serve(registry, folder=str(tmp_path / "pki"))
    try:
        assert srv.url.startswith("https://127.0.0.1:") and srv.port > 0
        assert call(srv, "GET", "/healthz")[0] == 200
    finally:
        srv.stop()
    srv.stop()  # idempotent


def test_serve_cluster_keeps_its_certificates_in_its_folder(tmp_path: Any) -> None:
    cluster = LocalCluster(nodes=2, runtime="sim", store="sqlite", data_dir=str(tmp_path / "c"))
    try:
        with serve(cluster) as srv:
            _, nodes, _ = call(srv, "GET", "/api/v1/nodes")
            assert sorted(n["metadata"]["name"] for n in nodes["items"]) == ["node-1", "node-2"]
        assert os.path.exists(tmp_path / "c" / "pki" / "ca.crt")
        assert os.stat(tmp_path / "c" / "pki").st_mode & 0o777 == 0o700
    finally:
        cluster.stop()


def test_serve_needs_a_folder_or_a_cluster(registry: Registry) -> None:
    with pytest.raises(TypeError):
        serve(object())
    with pytest.raises(BadRequest, match="folder"):
        serve(registry)


def test_plain_http_is_not_served(server: ApiServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    with pytest.raises((http.client.HTTPException, OSError)):
        conn.request("GET", "/api/v1/pods")
        conn.getresponse().read()


def test_anonymous_is_401_but_health_is_open(server: ApiServer) -> None:
    code, body, headers = call(server, "GET", "/api/v1/namespaces/default/pods", user=None)
    assert code == 401 and body["reason"] == "Unauthorized" and "WWW-Authenticate" in headers
    assert call(server, "GET", "/version", user=None)[0] == 401
    assert call(server, "GET", "/healthz", user=None)[:2] == (200, "ok")


def test_bad_tokens_are_one_line_401s(server: ApiServer) -> None:
    for token in ("garbage", "a.b.c", "x" * 5000):
        code, body, _ = call(server, "GET", "/api/v1/pods", token=token)
        assert code == 401 and "\n" not in body["message"]


def test_a_certificate_of_another_cluster_fails_the_handshake(server: ApiServer, tmp_path: Any) -> None:
    other = ClusterPKI(str(tmp_path / "other")).ensure()
    ctx = other.client_ssl_context(*other.issue_client_cert("mallory", ["system:masters"]))
    ctx.load_verify_locations(cadata=server.gate.pki.ca_pem.decode())  # type: ignore[attr-defined]
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=5, context=ctx)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        conn.request("GET", "/api/v1/pods")
        conn.getresponse().read()


def test_users_without_roles_are_forbidden_in_kubernetes_words(server: ApiServer) -> None:
    code, body, _ = call(server, "GET", "/api/v1/namespaces/default/pods", user="alice", groups=())
    assert code == 403 and body["reason"] == "Forbidden"
    assert body["message"] == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default"'
    )
    assert call(server, "GET", "/version", user="alice", groups=())[0] == 200  # system:discovery


def test_admin_kubeconfig(server: ApiServer, tmp_path: Any) -> None:
    path = server.write_kubeconfig(str(tmp_path / "sub" / "config"))
    assert os.stat(path).st_mode & 0o777 == 0o600
    with open(path) as f:
        cfg = yaml.safe_load(f)
    assert cfg["current-context"] == "nbkube"
    assert cfg["clusters"][0]["cluster"]["server"] == server.url
    assert cfg["clusters"][0]["cluster"]["certificate-authority-data"]
    assert cfg["users"][0]["user"]["client-certificate-data"]
    assert tls(server) is not None
