"""The cluster PKI: files and modes, re-issuing the serving certificate, client certificates, and real
TLS handshakes on loopback between `server_ssl_context` and `client_ssl_context`."""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nbkube.security.files import CredentialError
from nbkube.security.pki import ClusterPKI, identity_from_cert, verify_client_cert
from nbkube.security.tlsrequest import TLSSetupError, request_without_verifying

FILES = ("ca.crt", "ca.key", "sa.key", "sa.pub", "apiserver.crt", "apiserver.key")


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def _sans(path: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(v.value) for v in ext]


@pytest.fixture
def pki(tmp_path: Path) -> ClusterPKI:
    return ClusterPKI(str(tmp_path / "pki")).ensure()


def test_first_start_creates_private_files(pki: ClusterPKI, tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    assert _mode(folder) == 0o700
    assert sorted(os.listdir(folder)) == sorted([*FILES, ".lock"])
    for name in [*FILES, ".lock"]:
        assert _mode(folder / name) == 0o600, name
    ca = x509.load_pem_x509_certificate(pki.ca_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert lifetime >= datetime.timedelta(days=3650)
    assert pki.ca_path == str(folder / "ca.crt")
    assert Path(pki.ca_path).read_bytes() == pki.ca_pem
    assert pki.serving_cert_path == str(folder / "apiserver.crt")
    assert pki.serving_key_path == str(folder / "apiserver.key")
    sans = _sans(folder / "apiserver.crt")
    assert {"127.0.0.1", "::1", "localhost"} <= set(sans)


def test_second_start_loads_and_fixes_modes(pki: ClusterPKI, tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    before = {n: (folder / n).read_bytes() for n in FILES}
    os.chmod(folder, 0o755)
    os.chmod(folder / "ca.key", 0o644)
    os.chmod(folder / "sa.key", 0o640)
    again = ClusterPKI(str(folder)).ensure()
    assert {n: (folder / n).read_bytes() for n in FILES} == before
    assert again.ca_pem == pki.ca_pem
    assert _mode(folder) == 0o700
    assert all(_mode(folder / n) == 0o600 for n in FILES)


def test_concurrent_first_starts_make_one_ca(tmp_path: Path) -> None:
    folder = str(tmp_path / "shared")
    seen: list[bytes] = []

    def start() -> None:
        seen.append(ClusterPKI(folder).ensure().ca_pem)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(seen) == 3 and len(set(seen)) == 1
    assert Path(folder, "ca.crt").read_bytes() == seen[0]


def test_umask_does_not_open_files(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        ClusterPKI(str(tmp_path / "open")).ensure()
    finally:
        os.umask(old)
    assert _mode(tmp_path / "open") == 0o700
    assert all(_mode(tmp_path / "open" / n) == 0o600 for n in FILES)


def test_missing_san_reissues_serving_cert(pki: ClusterPKI, tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    first = (folder / "apiserver.crt").read_bytes()
    ClusterPKI(str(folder)).ensure()
    assert (folder / "apiserver.crt").read_bytes() == first  # nothing missing: kept
    ClusterPKI(str(folder)).ensure(["10.1.2.3", "API.Example.test"])
    assert (folder / "apiserver.crt").read_bytes() != first
    assert {"10.1.2.3", "api.example.test", "127.0.0.1"} <= set(_sans(folder / "apiserver.crt"))
    assert (folder / "ca.crt").read_bytes() == pki.ca_pem  # the CA stays


def test_bad_san_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match="not an IP address or DNS name"):
        ClusterPKI(str(tmp_path / "p")).ensure(["http://x"])


def test_half_a_ca_is_refused_not_replaced(pki: ClusterPKI, tmp_path: Path) -> None:
    os.unlink(tmp_path / "pki" / "ca.key")
    with pytest.raises(CredentialError, match=r"ca\.key: missing while its other half exists"):
        ClusterPKI(str(tmp_path / "pki")).ensure()
    assert (tmp_path / "pki" / "ca.crt").read_bytes() == pki.ca_pem


def test_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        folder = tmp_path / "theirs"
        folder.mkdir(mode=0o700)
        os.chown(folder, 65534, 65534)
    else:
        folder = Path("/")  # owned by root, so not by this user
    with pytest.raises(CredentialError, match="not by this user") as info:
        ClusterPKI(str(folder)).ensure()
    assert "\n" not in str(info.value)


def test_use_before_ensure_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CredentialError, match="call ensure"):
        _ = ClusterPKI(str(tmp_path / "p")).ca_pem


def test_client_cert_identity(pki: ClusterPKI) -> None:
    cert_pem, key_pem = pki.issue_client_cert("alice", ["dev", "system:masters"])
    assert identity_from_cert(_der(cert_pem)) == ("alice", ("dev", "system:masters"))
    assert pki.verify_client_cert(_der(cert_pem)) == ("alice", ("dev", "system:masters"))
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_client_cert_bad_input(pki: ClusterPKI) -> None:
    with pytest.raises(CredentialError, match="user name"):
        pki.issue_client_cert("", [])
    with pytest.raises(CredentialError, match="not one string"):
        pki.issue_client_cert("bob", "dev")  # type: ignore[arg-type]
    with pytest.raises(CredentialError, match="not a DER"):
        identity_from_cert(b"junk")


def test_foreign_and_serving_certs_fail_verification(pki: ClusterPKI, tmp_path: Path) -> None:
    other = ClusterPKI(str(tmp_path / "other")).ensure()
    foreign, _ = other.issue_client_cert("mallory", ["system:masters"])
    with pytest.raises(CredentialError, match="not issued by this cluster's CA"):
        pki.verify_client_cert(_der(foreign))
    serving = Path(pki.serving_cert_path).read_bytes()
    with pytest.raises(CredentialError, match="does not allow client auth"):
        verify_client_cert(_der(serving), pki.ca_cert)


# -- real TLS on loopback ---------------------------------------------------------------------------


def _expired_cert(pki: ClusterPKI, user: str) -> tuple[bytes, bytes]:
    """A client certificate from the cluster CA whose validity ended yesterday."""
    ca_key = serialization.load_pem_private_key(
        (Path(pki.ca_path).parent / "ca.key").read_bytes(), password=None
    )
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]))
        .issuer_name(pki.ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, host: str = "localhost"
) -> dict[str, Any]:
    """One TLS connection over loopback. The server reads the peer certificate's DER, answers with
    the identity it maps to; returns what each side saw (reply or exception)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    seen: dict[str, Any] = {}

    def serve() -> None:
        try:
            conn, _addr = listener.accept()
            conn.settimeout(10)
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                der = tls.getpeercert(binary_form=True)
                seen["server_der"] = der
                reply = repr(identity_from_cert(der)) if der else "anonymous"
                tls.sendall(reply.encode())
        except (OSError, ssl.SSLError) as exc:
            seen["server_error"] = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        # under TLS 1.3 the server judges the client certificate after the client's handshake
        # returned: a refusal shows on the first read
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            seen["client_reply"] = tls.recv(1024).decode()
    except (OSError, ssl.SSLError) as exc:
        seen["client_error"] = exc
    finally:
        thread.join(10)
        listener.close()
    return seen


def test_tls_with_client_cert_gives_identity(pki: ClusterPKI) -> None:
    cert_pem, key_pem = pki.issue_client_cert("alice", ["dev", "ops"])
    seen = _handshake(pki.server_ssl_context(), pki.client_ssl_context(cert_pem, key_pem))
    assert seen["client_reply"] == repr(("alice", ("dev", "ops")))
    assert seen["server_der"] == _der(cert_pem)


def test_tls_without_client_cert_still_connects(pki: ClusterPKI) -> None:
    seen = _handshake(pki.server_ssl_context(), pki.client_ssl_context())
    assert seen == {"server_der": None, "client_reply": "anonymous"}


def test_tls_by_ip_address(pki: ClusterPKI) -> None:
    seen = _handshake(pki.server_ssl_context(), pki.client_ssl_context(), host="127.0.0.1")
    assert seen["client_reply"] == "anonymous"


def test_tls_server_context_settings(pki: ClusterPKI) -> None:
    ctx = pki.server_ssl_context()
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


def test_tls_refuses_foreign_ca_client_cert(pki: ClusterPKI, tmp_path: Path) -> None:
    other = ClusterPKI(str(tmp_path / "other")).ensure()
    cert_pem, key_pem = other.issue_client_cert("mallory", ["system:masters"])
    seen = _handshake(pki.server_ssl_context(), pki.client_ssl_context(cert_pem, key_pem))
    assert isinstance(seen["server_error"], ssl.SSLError)
    assert "certificate verify failed" in str(seen["server_error"])
    assert "client_error" in seen and "server_der" not in seen


def test_tls_refuses_expired_client_cert(pki: ClusterPKI) -> None:
    cert_pem, key_pem = _expired_cert(pki, "alice")
    seen = _handshake(pki.server_ssl_context(), pki.client_ssl_context(cert_pem, key_pem))
    assert isinstance(seen["server_error"], ssl.SSLError)
    assert "certificate verify failed" in str(seen["server_error"])
    assert "client_error" in seen and "server_der" not in seen


def test_tls_requesting_without_verifying_hands_any_certificate_to_the_caller(
    pki: ClusterPKI, tmp_path: Path
) -> None:
    # the API server's context: the handshake accepts, verify_client_cert refuses (a 401 there)
    server_ctx = pki.server_ssl_context(verify_client_certs=False)
    assert server_ctx.verify_mode == ssl.CERT_OPTIONAL
    other = ClusterPKI(str(tmp_path / "other")).ensure()
    for cert_pem, key_pem, reason in (
        (*other.issue_client_cert("mallory", ["system:masters"]), "not issued by this cluster's CA"),
        (*_expired_cert(pki, "alice"), "not valid now"),
    ):
        seen = _handshake(server_ctx, pki.client_ssl_context(cert_pem, key_pem))
        assert seen["server_der"] == _der(cert_pem), seen
        with pytest.raises(CredentialError, match=reason):
            pki.verify_client_cert(seen["server_der"])
    cert_pem, key_pem = pki.issue_client_cert("bob", ["dev"])
    seen = _handshake(server_ctx, pki.client_ssl_context(cert_pem, key_pem))
    assert pki.verify_client_cert(seen["server_der"]) == ("bob", ("dev",))
    assert _handshake(server_ctx, pki.client_ssl_context()) == {"server_der": None, "client_reply": "anonymous"}


def test_request_without_verifying_needs_cert_optional(pki: ClusterPKI) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with pytest.raises(TLSSetupError, match="CERT_OPTIONAL"):
        request_without_verifying(ctx)


def test_client_refuses_server_of_another_cluster(pki: ClusterPKI, tmp_path: Path) -> None:
    other = ClusterPKI(str(tmp_path / "other")).ensure()
    seen = _handshake(other.server_ssl_context(), pki.client_ssl_context())
    assert isinstance(seen["client_error"], ssl.SSLCertVerificationError)


def test_client_refuses_name_not_in_sans(pki: ClusterPKI) -> None:
    seen = _handshake(pki.server_ssl_context(), pki.client_ssl_context(), host="elsewhere.test")
    assert isinstance(seen["client_error"], ssl.SSLCertVerificationError)
    assert "elsewhere.test" in str(seen["client_error"])


def test_client_context_needs_cert_and_key_together(pki: ClusterPKI) -> None:
    cert_pem, _key = pki.issue_client_cert("alice", [])
    with pytest.raises(CredentialError, match="both or neither"):
        pki.client_ssl_context(cert_pem, None)
    _other_cert, other_key = pki.issue_client_cert("bob", [])
    with pytest.raises(CredentialError, match="do not load"):
        pki.client_ssl_context(cert_pem, other_key)
