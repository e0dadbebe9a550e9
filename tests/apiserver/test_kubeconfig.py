"""Kubeconfigs: written 0600 (never readable by others on the way), read back through
load_kubeconfig and $KUBECONFIG, one-line errors naming the file; and the real kubectl and Python
client reaching an HTTPS server on loopback with them (client certificate and token), where the
Authenticator names the user."""

from __future__ import annotations

import base64
import http.server
import json
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from cryptography import x509
from nbk_apitest import KUBECTL, Kubectl

from nbkube.apiserver.authn import ADMIN_USER, MASTERS_GROUP, Authenticator
from nbkube.apiserver.kubeconfig import kubeconfig, write_kubeconfig
from nbkube.client.kubeconfig import KubeconfigError, KubeconfigTarget, load_kubeconfig
from nbkube.errors import Unauthorized
from nbkube.registry.registry import Registry
from nbkube.security.pki import ClusterPKI
from nbkube.security.tokens import TokenSigner

URL = "https://127.0.0.1:6443"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPKI:
    return ClusterPKI(str(tmp_path_factory.mktemp("kc") / "pki")).ensure()


def _mode(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_cert_kubeconfig_written_private(pki: ClusterPKI, tmp_path: Path) -> None:
    cert, key = pki.issue_client_cert(ADMIN_USER, [MASTERS_GROUP])
    path = write_kubeconfig(
        str(tmp_path / "new" / "admin.conf"),
        URL,
        ca_pem=pki.ca_pem,
        user=ADMIN_USER,
        client_cert_pem=cert,
        client_key_pem=key,
    )
    assert _mode(tmp_path / "new") == 0o700 and _mode(path) == 0o600
    assert os.listdir(tmp_path / "new") == ["admin.conf"]  # no temporary file left behind
    doc = yaml.safe_load(Path(path).read_text())
    cluster = doc["clusters"][0]["cluster"]
    assert cluster["server"] == URL
    assert base64.b64decode(cluster["certificate-authority-data"]) == pki.ca_pem
    user = doc["users"][0]
    assert user["name"] == ADMIN_USER
    assert base64.b64decode(user["user"]["client-certificate-data"]) == cert
    assert base64.b64decode(user["user"]["client-key-data"]) == key
    assert doc["contexts"][0]["context"] == {"cluster": "nbkube", "user": ADMIN_USER, "namespace": "default"}
    assert load_kubeconfig(path) == KubeconfigTarget(
        URL, pki.ca_pem, cert, key, None, "default", context="nbkube", path=path
    )


def test_never_readable_by_others_on_the_way(
    pki: ClusterPKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes: list[int] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        modes.append(_mode(src))  # the temporary file, full content written, before the rename
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    old = os.umask(0)
    try:
        path = write_kubeconfig(str(tmp_path / "kc"), URL, ca_pem=pki.ca_pem, user="t", token="secret")
    finally:
        os.umask(old)
    assert modes == [0o600] and _mode(path) == 0o600
    # overwriting a file that had drifted open leaves it private too
    os.chmod(path, 0o644)
    write_kubeconfig(path, URL, ca_pem=pki.ca_pem, user="t", token="other")
    assert _mode(path) == 0o600 and load_kubeconfig(path).token == "other"


def test_token_kubeconfig_and_namespace(pki: ClusterPKI, tmp_path: Path) -> None:
    path = write_kubeconfig(
        str(tmp_path / "t"),
        URL,
        "tenant",
        ca_pem=pki.ca_pem,
        user="tenant-a",
        token="tok",
        namespace="team-a",
    )
    target = load_kubeconfig(path)
    assert (target.server, target.token, target.namespace, target.context) == (URL, "tok", "team-a", "tenant")
    assert target.cert_pem is None and target.key_pem is None


def test_plain_http_kubeconfig_as_before(tmp_path: Path) -> None:
    path = write_kubeconfig(str(tmp_path / "kc"), "http://127.0.0.1:8080")
    target = load_kubeconfig(path)
    assert (target.server, target.ca_pem, target.token) == ("http://127.0.0.1:8080", None, None)


def test_bad_kubeconfig_requests(pki: ClusterPKI) -> None:
    cert, key = pki.issue_client_cert("u", [])
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: kubeconfig(URL, None, user="u"), "needs the cluster CA"),
        (lambda: kubeconfig("ftp://x", pki.ca_pem, user="u"), "neither http"),
        (lambda: kubeconfig(URL, pki.ca_pem, user="u", client_cert_pem=cert), "together"),
        (
            lambda: kubeconfig(
                URL, pki.ca_pem, user="u", client_cert_pem=cert, client_key_pem=key, token="t"
            ),
            "not both",
        ),
        (lambda: kubeconfig("http://127.0.0.1:1", None, user="u", token="t"), "in clear"),
    ]
    for fn, message in cases:
        with pytest.raises(ValueError, match=message):
            fn()


def test_kubeconfig_env_first_file(pki: ClusterPKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = write_kubeconfig(str(tmp_path / "a"), URL, ca_pem=pki.ca_pem, user="a", token="ta")
    second = write_kubeconfig(str(tmp_path / "b"), URL, ca_pem=pki.ca_pem, user="b", token="tb")
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join(["", first, second]))
    assert load_kubeconfig().token == "ta"
    monkeypatch.setenv("KUBECONFIG", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(KubeconfigError, match=r"home/\.kube/config: no such file"):
        load_kubeconfig()


def test_file_paths_relative_to_the_kubeconfig(pki: ClusterPKI, tmp_path: Path) -> None:
    cert, key = pki.issue_client_cert("u", [])
    (tmp_path / "ca.crt").write_bytes(pki.ca_pem)
    (tmp_path / "u.crt").write_bytes(cert)
    (tmp_path / "u.key").write_bytes(key)
    (tmp_path / "tok").write_text("file-token\n")
    doc = {
        "clusters": [{"name": "c", "cluster": {"server": URL + "/", "certificate-authority": "ca.crt"}}],
        "users": [
            {"name": "u", "user": {"client-certificate": "u.crt", "client-key": str(tmp_path / "u.key")}},
            {"name": "t", "user": {"tokenFile": "tok"}},
        ],
        "contexts": [
            {"name": "cert", "context": {"cluster": "c", "user": "u"}},
            {"name": "token", "context": {"cluster": "c", "user": "t", "namespace": "x"}},
        ],
        "current-context": "cert",
    }
    (tmp_path / "config").write_text(yaml.safe_dump(doc))
    target = load_kubeconfig(str(tmp_path / "config"))
    assert (target.server, target.ca_pem, target.cert_pem, target.key_pem) == (URL, pki.ca_pem, cert, key)
    by_token = load_kubeconfig(str(tmp_path / "config"), context="token")
    assert (by_token.token, by_token.namespace, by_token.cert_pem) == ("file-token", "x", None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [1, 2\n", "not valid YAML at line 2"),
        ("- just a list\n", "not a kubeconfig"),
        ("clusters: []\n", "no current-context"),
        ("current-context: x\ncontexts: []\n", r"no context named 'x' \(there are: none\)"),
        (
            "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
            "clusters: [{name: c, cluster: {server: 'https://h', insecure-skip-tls-verify: true}}]\n",
            "insecure-skip-tls-verify is not supported",
        ),
        (
            "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
            "clusters: [{name: c, cluster: {server: 'h:1'}}]\n",
            "server must be an http:// or https:// URL",
        ),
        (
            "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
            "clusters: [{name: c, cluster: {server: 'https://h', certificate-authority-data: '%%%'}}]\n"
            "users: [{name: u, user: {}}]\n",
            r"clusters\[c\].cluster.certificate-authority-data: not valid base64",
        ),
        (
            "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
            "clusters: [{name: c, cluster: {server: 'https://h'}}]\n"
            "users: [{name: u, user: {exec: {command: aws}}}]\n",
            r"exec credential plugins \(exec\) not supported",
        ),
        (
            "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
            "clusters: [{name: c, cluster: {server: 'https://h'}}]\n"
            "users: [{name: u, user: {client-key-data: QQ==}}]\n",
            "needs its key and the other way round",
        ),
    ],
)
def test_malformed_kubeconfig(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config"
    path.write_text(text)
    with pytest.raises(KubeconfigError, match=message) as info:
        load_kubeconfig(str(path))
    assert str(info.value).startswith(f"kubeconfig {path}: ") and "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match=f"kubeconfig {tmp_path}/nope: no such file"):
        load_kubeconfig(str(tmp_path / "nope"))


# -- real clients over TLS --------------------------------------------------------------------------


def _version(git_version: str) -> dict[str, str]:
    fields = ("buildDate", "compiler", "gitCommit", "gitTreeState", "goVersion", "major", "minor", "platform")
    return {**{f: "x" for f in fields}, "gitVersion": git_version}


class _WhoAmI(http.server.BaseHTTPRequestHandler):
    """Answers GET /version with the authenticated user's name as gitVersion."""

    authn: Authenticator

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        der = self.connection.getpeercert(binary_form=True)  # type: ignore[attr-defined]
        try:
            user = self.authn.authenticate(der, self.headers.get("Authorization"))
            code, body = (
                200,
                _version(user.name),
            )
        except Unauthorized as exc:
            code, body = 401, {"kind": "Status", "status": "Failure", "message": str(exc), "code": 401}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def https_url(pki: ClusterPKI, registry: Registry) -> Iterator[tuple[str, Authenticator]]:
    authn = Authenticator(pki, TokenSigner(pki.sa_key_pem, pki.sa_pub_pem), registry)
    handler = type("Handler", (_WhoAmI,), {"authn": authn})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = pki.server_ssl_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", authn
    server.shutdown()
    server.server_close()
    thread.join(10)


def _python_client_version(path: str) -> str:
    api_client = kubernetes.config.new_client_from_config(config_file=path)
    try:
        return str(kubernetes.client.VersionApi(api_client).get_code().git_version)
    finally:
        api_client.close()


def test_python_client_with_cert_and_token(
    pki: ClusterPKI, tmp_path: Path, https_url: tuple[str, Authenticator]
) -> None:
    url, authn = https_url
    cert, key = pki.issue_client_cert(ADMIN_USER, [MASTERS_GROUP])
    admin = write_kubeconfig(
        str(tmp_path / "admin"),
        url,
        ca_pem=pki.ca_pem,
        user=ADMIN_USER,
        client_cert_pem=cert,
        client_key_pem=key,
    )
    assert _python_client_version(admin) == ADMIN_USER
    token = authn.add_static_token("tenant-a", ["tenants"])
    tenant = write_kubeconfig(str(tmp_path / "tenant"), url, ca_pem=pki.ca_pem, user="tenant-a", token=token)
    assert _python_client_version(tenant) == "tenant-a"
    bad = write_kubeconfig(str(tmp_path / "bad"), url, ca_pem=pki.ca_pem, user="x", token="nope")
    with pytest.raises(kubernetes.client.ApiException) as info:
        _python_client_version(bad)
    assert info.value.status == 401


def test_kubectl_with_cert_kubeconfig(
    pki: ClusterPKI, tmp_path: Path, https_url: tuple[str, Authenticator]
) -> None:
    assert KUBECTL is not None, "kubectl is not installed: this test needs the real kubectl"
    url, _authn = https_url
    cert, key = pki.issue_client_cert("alice", ["dev"])
    path = write_kubeconfig(
        str(tmp_path / "kc"), url, ca_pem=pki.ca_pem, user="alice", client_cert_pem=cert, client_key_pem=key
    )
    (tmp_path / "home").mkdir()
    out = json.loads(Kubectl(path, str(tmp_path / "home")).ok("get", "--raw", "/version"))
    assert out["gitVersion"] == "alice"
    # kubectl checks the serving certificate against the CA in the kubeconfig
    other = ClusterPKI(str(tmp_path / "other")).ensure()
    wrong_ca = write_kubeconfig(
        str(tmp_path / "wrong"),
        url,
        ca_pem=other.ca_pem,
        user="alice",
        client_cert_pem=cert,
        client_key_pem=key,
    )
    proc = Kubectl(wrong_ca, str(tmp_path / "home"))("get", "--raw", "/version")
    assert proc.returncode != 0 and "certificate" in proc.stderr
    assert x509.load_pem_x509_certificate(cert).subject.rfc4514_string() == "CN=alice,O=dev"
