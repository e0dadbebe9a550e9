"""Starting and stopping: serve() over a registry or a cluster, HTTPS only, every request
authenticated and authorized, the admin kubeconfig."""

from __future__ import annotations

import datetime
import http.client
import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from nbk_apitest import call, tls

from nbkube.apiserver import ApiServer, serve
from nbkube.apiserver.authn import ADMIN_USER
from nbkube.client.kubeconfig import write_kubeconfig
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


def _expired_cert(pki: ClusterPKI, user: str) -> tuple[bytes, bytes]:
    """A client certificate of the cluster CA (CN=`user`, system:masters) that expired yesterday."""
    ca_key = serialization.load_pem_private_key((Path(pki.ca_path).parent / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"), x509.NameAttribute(NameOID.COMMON_NAME, user)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(name))
        .issuer_name(pki.ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _get_with(server: ApiServer, cert_pem: bytes, key_pem: bytes, token: str | None = None) -> tuple[int, Any]:
    pki: ClusterPKI = server.gate.pki  # type: ignore[attr-defined]
    ctx = pki.client_ssl_context(cert_pem, key_pem)
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=5, context=ctx)
    try:
        conn.request("GET", "/api/v1/pods", headers={"Authorization": f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def _refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], "no traceback"
    return [r for r in caplog.records if "401 for client certificate" in r.getMessage()]


def test_a_certificate_of_another_cluster_is_a_401_logged_once(
    server: ApiServer, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    other = ClusterPKI(str(tmp_path / "other")).ensure()
    cert_pem, key_pem = other.issue_client_cert("mallory", ["system:masters"])
    for _ in range(2):
        code, body = _get_with(server, cert_pem, key_pem)
        assert code == 401 and body["reason"] == "Unauthorized"
        assert body["message"] == "client certificate: not issued by this cluster's CA"
    (line,) = _refusals(caplog)  # one line for the certificate, not one per request
    assert "'mallory'" in line.getMessage() and "not issued by this cluster's CA" in line.getMessage()


def test_an_expired_certificate_is_a_401(server: ApiServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    code, body = _get_with(server, *_expired_cert(server.gate.pki, "old-admin"))  # type: ignore[attr-defined]
    assert code == 401 and body["message"].startswith("client certificate: not valid now (valid ")
    assert "\n" not in body["message"]
    (line,) = _refusals(caplog)
    assert "'old-admin'" in line.getMessage()


def test_a_good_token_beside_a_foreign_certificate_still_authenticates(server: ApiServer, tmp_path: Any) -> None:
    other = ClusterPKI(str(tmp_path / "other")).ensure()
    token = server.gate.authenticator.add_static_token(ADMIN_USER, ["system:masters"])  # type: ignore[attr-defined]
    code, _body = _get_with(server, *other.issue_client_cert("mallory", []), token=token)
    assert code == 200


@pytest.mark.parametrize("kubectl", ["/usr/lib/google-cloud-sdk/bin/kubectl.1.27", "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"])
def test_kubectl_with_a_foreign_or_expired_certificate_is_told_unauthorized(
    server: ApiServer, tmp_path: Any, kubectl: str
) -> None:
    pki: ClusterPKI = server.gate.pki  # type: ignore[attr-defined]
    other = ClusterPKI(str(tmp_path / "other")).ensure()
    for name, (cert_pem, key_pem) in (
        ("foreign", other.issue_client_cert("mallory", ["system:masters"])),
        ("expired", _expired_cert(pki, "old-admin")),
    ):
        path = write_kubeconfig(
            str(tmp_path / f"{name}.kubeconfig"),
            server.url,
            ca_pem=pki.ca_pem,
            user=name,
            client_cert_pem=cert_pem,
            client_key_pem=key_pem,
        )
        proc = subprocess.run(
            [kubectl, "--kubeconfig", path, "get", "pods"],
            capture_output=True, text=True, timeout=30, env={**os.environ, "HOME": str(tmp_path)},
        )  # fmt: skip
        # a 401, as from kube-apiserver (kubectl words it its way), not a TLS failure
        assert proc.returncode == 1
        assert proc.stderr.strip().splitlines()[-1].startswith("error: You must be logged in to the server ("), proc.stderr
        assert "tls" not in proc.stderr.lower() and "certificate" not in proc.stderr.lower(), proc.stderr


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
