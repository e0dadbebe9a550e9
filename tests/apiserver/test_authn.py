"""The authenticator over a real Registry: bearer tokens (ServiceAccount JWTs, static tokens),
verified client certificates, anonymous, and every refusal as one-line Unauthorized."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from nbkube.apiserver.authn import ADMIN, ADMIN_USER, ANONYMOUS, MASTERS_GROUP, Authenticator, UserInfo
from nbkube.clock import FakeClock
from nbkube.errors import Unauthorized
from nbkube.registry.registry import Registry
from nbkube.security.files import CredentialError
from nbkube.security.pki import ClusterPKI
from nbkube.security.tokens import DEFAULT_AUDIENCE, TokenSigner

AUD = [DEFAULT_AUDIENCE]


@pytest.fixture
def pki(tmp_path: Path) -> ClusterPKI:
    return ClusterPKI(str(tmp_path / "pki")).ensure()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def signer(pki: ClusterPKI, clock: FakeClock) -> TokenSigner:
    return TokenSigner(pki.sa_key_pem, pki.sa_pub_pem, clock=clock)


@pytest.fixture
def authn(pki: ClusterPKI, signer: TokenSigner, registry: Registry) -> Authenticator:
    return Authenticator(pki, signer, registry)


@pytest.fixture
def builder(registry: Registry) -> dict[str, Any]:
    registry.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    return registry.create(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder", "namespace": "team-a"}}
    )


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def _token(signer: TokenSigner, sa: dict[str, Any], **kw: Any) -> str:
    meta = sa["metadata"]
    token, _exp = signer.issue(meta["namespace"], meta["name"], meta["uid"], kw.pop("aud", AUD), 3600, **kw)
    return token


def _refused(authn: Authenticator, header: str | None, der: bytes | None = None) -> str:
    with pytest.raises(Unauthorized) as info:
        authn.authenticate(der, header)
    message = str(info.value)
    assert "\n" not in message and info.value.code == 401
    return message


def test_anonymous(authn: Authenticator) -> None:
    assert authn.authenticate(None, None) == ANONYMOUS
    assert authn.authenticate(b"", "  ") == ANONYMOUS
    assert UserInfo("system:anonymous", ("system:unauthenticated",)) == ANONYMOUS


def test_admin_client_cert(authn: Authenticator, pki: ClusterPKI) -> None:
    cert, _key = pki.issue_client_cert(ADMIN_USER, [MASTERS_GROUP])
    assert authn.authenticate(_der(cert), None) == ADMIN
    assert ADMIN.name == "kubernetes-admin" and "system:masters" in ADMIN.groups


def test_client_cert_user_and_groups(authn: Authenticator, pki: ClusterPKI) -> None:
    cert, _key = pki.issue_client_cert("system:node:node-1", ["system:nodes"])
    user = authn.authenticate(_der(cert), None)
    assert user == UserInfo("system:node:node-1", ("system:nodes", "system:authenticated"))


def test_foreign_client_cert(authn: Authenticator, tmp_path: Path) -> None:
    other = ClusterPKI(str(tmp_path / "other")).ensure()
    cert, _key = other.issue_client_cert(ADMIN_USER, [MASTERS_GROUP])
    assert "not issued by this cluster's CA" in _refused(authn, None, _der(cert))


def test_service_account_token(authn: Authenticator, signer: TokenSigner, builder: dict[str, Any]) -> None:
    user = authn.authenticate(None, "Bearer " + _token(signer, builder))
    assert user.name == "system:serviceaccount:team-a:builder"
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:team-a", "system:authenticated")
    assert user.uid == builder["metadata"]["uid"]
    assert user.is_service_account
    [(key, (value,))] = user.extra
    assert key == "authentication.kubernetes.io/credential-id" and value.startswith("JTI=")
    # the scheme is case-insensitive, as upstream's
    assert authn.authenticate(None, "bearer " + _token(signer, builder)).name == user.name


def test_token_wins_over_client_cert(
    authn: Authenticator, signer: TokenSigner, builder: dict[str, Any], pki: ClusterPKI
) -> None:
    cert, _key = pki.issue_client_cert(ADMIN_USER, [MASTERS_GROUP])
    user = authn.authenticate(_der(cert), "Bearer " + _token(signer, builder))
    assert user.name == "system:serviceaccount:team-a:builder"


def test_deleted_service_account(
    authn: Authenticator, signer: TokenSigner, builder: dict[str, Any], registry: Registry
) -> None:
    token = _token(signer, builder)
    registry.delete("ServiceAccount", "builder", "team-a")
    assert _refused(authn, f"Bearer {token}") == (
        "invalid bearer token: ServiceAccount team-a/builder has been deleted"
    )
    registry.create(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder", "namespace": "team-a"}}
    )
    assert "was deleted and made again" in _refused(authn, f"Bearer {token}")


def test_expired_token(
    authn: Authenticator, signer: TokenSigner, builder: dict[str, Any], clock: FakeClock
) -> None:
    token = _token(signer, builder)
    clock.advance(3600)
    assert _refused(authn, f"Bearer {token}") == "invalid bearer token: token has expired"


def test_wrong_audience_and_tampering(
    authn: Authenticator, signer: TokenSigner, builder: dict[str, Any]
) -> None:
    assert "wrong audience" in _refused(authn, "Bearer " + _token(signer, builder, aud=["vault"]))
    header, payload, sig = _token(signer, builder).split(".")
    assert "bad signature" in _refused(authn, f"Bearer {header}.{payload}.{sig[:-4]}AAAA")


def test_token_from_another_cluster(authn: Authenticator, builder: dict[str, Any], tmp_path: Path) -> None:
    other = ClusterPKI(str(tmp_path / "other")).ensure()
    token = _token(TokenSigner(other.sa_key_pem, other.sa_pub_pem), builder)
    assert "bad signature" in _refused(authn, f"Bearer {token}")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Basic YWRtaW46YWRtaW4=", "unsupported Authorization scheme 'Basic'"),
        ("Bearer", "empty bearer token"),
        ("Bearer    ", "empty bearer token"),
        ("Bearer not-a-token", "neither a known static token nor a JSON Web Token"),
        ("Bearer a.b.c", "invalid bearer token: malformed token"),
    ],
)
def test_malformed_headers(authn: Authenticator, header: str, expected: str) -> None:
    assert expected in _refused(authn, header)


def test_token_bound_to_pod(
    authn: Authenticator, signer: TokenSigner, builder: dict[str, Any], registry: Registry
) -> None:
    pod = registry.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "team-a"},
            "spec": {"serviceAccountName": "builder", "containers": [{"name": "c", "image": "busybox"}]},
        }
    )
    ref = {"kind": "Pod", "name": "web", "uid": pod["metadata"]["uid"]}
    token = _token(signer, builder, bound_object=ref)
    extra = dict(authn.authenticate(None, f"Bearer {token}").extra)
    assert extra["authentication.kubernetes.io/pod-name"] == ("web",)
    assert extra["authentication.kubernetes.io/pod-uid"] == (pod["metadata"]["uid"],)
    registry.delete("Pod", "web", "team-a")
    assert _refused(authn, f"Bearer {token}") == "invalid bearer token: Pod team-a/web has been deleted"


def test_token_bound_to_secret(
    authn: Authenticator, signer: TokenSigner, builder: dict[str, Any], registry: Registry
) -> None:
    secret = registry.create(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "team-a"}}
    )
    token = _token(
        signer, builder, bound_object={"kind": "Secret", "name": "s", "uid": secret["metadata"]["uid"]}
    )
    assert authn.authenticate(None, f"Bearer {token}").name == "system:serviceaccount:team-a:builder"
    registry.delete("Secret", "s", "team-a")
    assert "Secret team-a/s has been deleted" in _refused(authn, f"Bearer {token}")


# -- static tokens -----------------------------------------------------------------------------------


def test_static_token(authn: Authenticator, pki: ClusterPKI) -> None:
    token = authn.add_static_token("tenant-a", ["tenants", "team-a"])
    path = Path(pki.folder) / "tokens.csv"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text() == f'{token},tenant-a,,"tenants,team-a"\n'
    user = authn.authenticate(None, f"Bearer {token}")
    assert user == UserInfo("tenant-a", ("tenants", "team-a", "system:authenticated"))
    assert "neither a known static token" in _refused(authn, f"Bearer {token[:-1]}")


def test_static_tokens_survive_restart_and_other_writers(
    authn: Authenticator, pki: ClusterPKI, signer: TokenSigner, registry: Registry
) -> None:
    first = authn.add_static_token("alice", [])
    # another process (the CLI) adds a token: this authenticator sees it without a restart
    second = Authenticator(pki, signer, registry).add_static_token("bob", ["dev"], uid="42")
    assert authn.authenticate(None, f"Bearer {second}") == UserInfo(
        "bob", ("dev", "system:authenticated"), "42"
    )
    restarted = Authenticator(pki, signer, registry)
    assert restarted.authenticate(None, f"Bearer {first}").name == "alice"


def test_hand_written_token_file(pki: ClusterPKI, signer: TokenSigner, registry: Registry) -> None:
    path = Path(pki.folder) / "tokens.csv"
    path.write_text('t0ken-1,carol,u1,"a,b"\n\nt0ken-2,dave,u2\n')
    authn = Authenticator(pki, signer, registry)
    assert authn.authenticate(None, "Bearer t0ken-1") == UserInfo(
        "carol", ("a", "b", "system:authenticated"), "u1"
    )
    assert authn.authenticate(None, "Bearer t0ken-2") == UserInfo("dave", ("system:authenticated",), "u2")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # loading put the mode back


def test_broken_token_file(
    pki: ClusterPKI, signer: TokenSigner, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    path = Path(pki.folder) / "tokens.csv"
    path.write_text("t1,carol,u1\nonly-two,columns\n")
    with pytest.raises(CredentialError, match=r"tokens\.csv line 2: want token,user,uid"):
        Authenticator(pki, signer, registry)
    path.write_text("t1,carol,u1\n")
    authn = Authenticator(pki, signer, registry)
    path.write_text("t1,carol,u1\nt1,again,u2\n")  # broken while serving: the last good table stays
    with caplog.at_level(logging.WARNING):
        assert authn.authenticate(None, "Bearer t1").name == "carol"
    assert "the same token appears twice" in caplog.text
    with pytest.raises(CredentialError, match="the same token appears twice"):
        authn.add_static_token("erin", [])


def test_bad_static_token_requests(authn: Authenticator) -> None:
    with pytest.raises(CredentialError, match="user name may not be empty"):
        authn.add_static_token("", [])
    with pytest.raises(CredentialError, match="group names may not"):
        authn.add_static_token("x", ["a,b"])
