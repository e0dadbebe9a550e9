"""ServiceAccount tokens: the claims upstream's bound tokens carry, and every way verification fails."""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nbkube.clock import FakeClock
from nbkube.security.pki import ClusterPKI
from nbkube.security.tokens import DEFAULT_AUDIENCE, DEFAULT_ISSUER, InvalidToken, TokenSigner

AUD = [DEFAULT_AUDIENCE]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    pki = ClusterPKI(str(tmp_path_factory.mktemp("tok") / "pki")).ensure()
    return pki.sa_key_pem, pki.sa_pub_pem


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def signer(keys: tuple[bytes, bytes], clock: FakeClock) -> TokenSigner:
    return TokenSigner(*keys, clock=clock)


def _segments(token: str) -> list[dict[str, object]]:
    out = []
    for part in token.split(".")[:2]:
        out.append(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))
    return out


def test_claims_as_upstream(signer: TokenSigner, clock: FakeClock) -> None:
    token, expires = signer.issue(
        "team-a", "builder", "uid-1", AUD, 3600, bound_object={"kind": "Pod", "name": "p", "uid": "pod-uid"}
    )
    header, claims = _segments(token)
    assert header["alg"] == "RS256" and header["kid"] == signer.key_id
    now = int(clock.now())
    assert claims["iss"] == DEFAULT_ISSUER
    assert claims["sub"] == "system:serviceaccount:team-a:builder"
    assert claims["aud"] == AUD
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (now, now, now + 3600)
    assert isinstance(claims["jti"], str) and claims["jti"]
    assert claims["kubernetes.io"] == {
        "namespace": "team-a",
        "serviceaccount": {"name": "builder", "uid": "uid-1"},
        "pod": {"name": "p", "uid": "pod-uid"},
    }
    assert expires == datetime.datetime.fromtimestamp(now + 3600, datetime.UTC)
    assert signer.verify(token, AUD) == claims


def test_each_token_is_unique(signer: TokenSigner) -> None:
    a, _ = signer.issue("ns", "sa", "u", AUD, 600)
    b, _ = signer.issue("ns", "sa", "u", AUD, 600)
    assert a != b


def test_expired(signer: TokenSigner, clock: FakeClock) -> None:
    token, _ = signer.issue("ns", "sa", "u", AUD, 600)
    clock.advance(599)
    assert signer.verify(token, AUD)["sub"] == "system:serviceaccount:ns:sa"
    clock.advance(1)
    with pytest.raises(InvalidToken, match="^token has expired$"):
        signer.verify(token, AUD)


def test_not_yet_valid(keys: tuple[bytes, bytes], clock: FakeClock) -> None:
    ahead = FakeClock(clock.now() + 3600)
    token, _ = TokenSigner(*keys, clock=ahead).issue("ns", "sa", "u", AUD, 7200)
    with pytest.raises(InvalidToken, match="not valid yet"):
        TokenSigner(*keys, clock=clock).verify(token, AUD)


def test_tampered(signer: TokenSigner) -> None:
    token, _ = signer.issue("ns", "sa", "u", AUD, 600)
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["kubernetes.io"]["namespace"] = "kube-system"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    with pytest.raises(InvalidToken, match="^bad signature"):
        signer.verify(f"{header}.{forged}.{sig}", AUD)


def test_signed_by_another_key(signer: TokenSigner, tmp_path: Path) -> None:
    other = ClusterPKI(str(tmp_path / "other")).ensure()
    token, _ = TokenSigner(other.sa_key_pem, other.sa_pub_pem).issue("ns", "sa", "u", AUD, 600)
    with pytest.raises(InvalidToken, match="^bad signature"):
        signer.verify(token, AUD)


def test_alg_none_and_hmac_refused(signer: TokenSigner, keys: tuple[bytes, bytes], clock: FakeClock) -> None:
    now = int(clock.now())
    claims = {"iss": DEFAULT_ISSUER, "sub": "system:serviceaccount:ns:sa", "aud": AUD, "exp": now + 600}
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(InvalidToken, match="algorithm 'none'"):
        signer.verify(unsigned, AUD)
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    body = unsigned.split(".")[1]
    with pytest.raises(InvalidToken, match="algorithm 'HS256'"):
        signer.verify(f"{header}.{body}.c2ln", AUD)


def test_wrong_audience(signer: TokenSigner) -> None:
    token, _ = signer.issue("ns", "sa", "u", ["vault"], 600)
    with pytest.raises(InvalidToken, match="^wrong audience"):
        signer.verify(token, AUD)
    assert signer.verify(token, ["other", "vault"])["aud"] == ["vault"]


def test_wrong_issuer(keys: tuple[bytes, bytes], clock: FakeClock) -> None:
    token, _ = TokenSigner(*keys, issuer="https://elsewhere", clock=clock).issue("ns", "sa", "u", AUD, 600)
    with pytest.raises(InvalidToken, match="^wrong issuer"):
        TokenSigner(*keys, clock=clock).verify(token, AUD)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "....", "eyJhbGciOiJSUzI1NiJ9.!!.x"])
def test_malformed(signer: TokenSigner, token: str) -> None:
    with pytest.raises(InvalidToken, match="^malformed token") as info:
        signer.verify(token, AUD)
    assert "\n" not in str(info.value)


def test_missing_private_claim(keys: tuple[bytes, bytes], signer: TokenSigner, clock: FakeClock) -> None:
    now = int(clock.now())
    claims = {
        "iss": DEFAULT_ISSUER,
        "sub": "system:serviceaccount:ns:sa",
        "aud": AUD,
        "exp": now + 600,
        "iat": now,
        "nbf": now,
    }
    key = serialization.load_pem_private_key(keys[0], password=None)
    token = jwt.encode(claims, key, algorithm="RS256")  # type: ignore[arg-type]
    with pytest.raises(InvalidToken, match="no kubernetes.io claim"):
        signer.verify(token, AUD)
    claims["kubernetes.io"] = {"namespace": "other", "serviceaccount": {"name": "sa", "uid": "u"}}
    token = jwt.encode(claims, key, algorithm="RS256")  # type: ignore[arg-type]
    with pytest.raises(InvalidToken, match="sub does not match"):
        signer.verify(token, AUD)


def test_issue_bounds(signer: TokenSigner) -> None:
    with pytest.raises(ValueError, match="between 600 and 172800"):
        signer.issue("ns", "sa", "u", AUD, 599)
    with pytest.raises(ValueError, match="between 600 and 172800"):
        signer.issue("ns", "sa", "u", AUD, 48 * 3600 + 1)
    with pytest.raises(ValueError, match="audiences"):
        signer.issue("ns", "sa", "u", [], 600)
    with pytest.raises(ValueError, match="kind must be one of Pod, Secret"):
        signer.issue("ns", "sa", "u", AUD, 600, bound_object={"kind": "Node", "name": "n", "uid": "x"})


def test_es256_keys(clock: FakeClock) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    priv = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signer = TokenSigner(priv, pub, clock=clock)
    token, _ = signer.issue("ns", "sa", "u", AUD, 600)
    assert _segments(token)[0]["alg"] == "ES256"
    assert signer.verify(token, AUD)["kubernetes.io"]["serviceaccount"]["name"] == "sa"


def test_mismatched_key_pair(keys: tuple[bytes, bytes], tmp_path: Path) -> None:
    other = ClusterPKI(str(tmp_path / "o")).ensure()
    with pytest.raises(ValueError, match="does not belong"):
        TokenSigner(keys[0], other.sa_pub_pem)
