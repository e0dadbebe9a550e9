"""ServiceAccount tokens: signed JWTs in the shape of upstream's bound ServiceAccount tokens.

`TokenSigner.issue` makes what `kubectl create token SA` (the TokenRequest API) hands out: a JWT
signed with the cluster's ServiceAccount key (`sa.key` of `pki.ClusterPKI`; RS256 for RSA keys,
ES256 for EC P-256), with the claims upstream puts there (`iss`, `sub` =
`system:serviceaccount:NS:NAME`, `aud`, `exp`, `iat`, `nbf`, `jti` and the private
`kubernetes.io` claim naming the namespace, the ServiceAccount and the Pod or Secret the token is
bound to). `TokenSigner.verify` checks signature, issuer, audience and time and returns the claims;
whether the ServiceAccount (and bound object) still exists is the API server's authenticator's
business (`apiserver/authn.py`). PyJWT does the JOSE work; the clock is injectable so expiry is
tested without waiting.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from nbkube.clock import REAL_CLOCK, Clock

__all__ = [
    "TokenSigner",
    "InvalidToken",
    "DEFAULT_ISSUER",
    "DEFAULT_AUDIENCE",
    "MIN_EXPIRATION_SECONDS",
    "DEFAULT_EXPIRATION_SECONDS",
    "MAX_EXPIRATION_SECONDS",
    "BOUND_KINDS",
    "SERVICE_ACCOUNT_PREFIX",
]

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_AUDIENCE = DEFAULT_ISSUER  # as upstream: the API server's audience defaults to its issuer
MIN_EXPIRATION_SECONDS = 600  # upstream's floor for TokenRequest.spec.expirationSeconds
DEFAULT_EXPIRATION_SECONDS = 3600
MAX_EXPIRATION_SECONDS = 48 * 3600
BOUND_KINDS = ("Pod", "Secret")
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
NBF_LEEWAY_SECONDS = 60  # another API server's clock may run a little ahead of ours
_CLAIM = "kubernetes.io"


class InvalidToken(Exception):
    """A token that does not verify; `str()` is one line saying why (malformed, expired, ...)."""


def _algorithm(key: Any) -> str:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and isinstance(
        key.curve, ec.SECP256R1
    ):
        return "ES256"
    raise ValueError(f"ServiceAccount signing key: unsupported type {type(key).__name__} (RSA or EC P-256)")


def _key_id(public_key: Any) -> str:
    # upstream's kid: unpadded base64url of the SHA-256 of the public key's DER (PKIX) form
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


def _check_bound_object(obj: dict[str, Any]) -> dict[str, str]:
    kind, name, uid = obj.get("kind"), obj.get("name"), obj.get("uid")
    if kind not in BOUND_KINDS:
        raise ValueError(f"bound object: kind must be one of {', '.join(BOUND_KINDS)}, got {kind!r}")
    if not isinstance(name, str) or not name or not isinstance(uid, str) or not uid:
        raise ValueError("bound object: name and uid are required")
    return {"kind": kind, "name": name, "uid": uid}


class TokenSigner:
    """Issues and verifies ServiceAccount JWTs with one key pair (PEM, PKCS#8 / SubjectPublicKeyInfo)."""

    def __init__(
        self,
        private_key_pem: bytes,
        public_key_pem: bytes,
        issuer: str = DEFAULT_ISSUER,
        *,
        clock: Clock = REAL_CLOCK,
    ):
        try:
            self._private = serialization.load_pem_private_key(private_key_pem, password=None)
            self._public = serialization.load_pem_public_key(public_key_pem)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"ServiceAccount signing key: not a PEM key pair ({exc})") from None
        self.algorithm = _algorithm(self._private)
        if _algorithm(self._public) != self.algorithm or _key_id(self._private.public_key()) != _key_id(
            self._public
        ):
            raise ValueError("ServiceAccount signing key: the public key does not belong to the private key")
        self.key_id = _key_id(self._public)
        self.issuer = issuer
        self.clock = clock

    def issue(
        self,
        namespace: str,
        sa_name: str,
        sa_uid: str,
        audiences: Sequence[str],
        expiration_seconds: int = DEFAULT_EXPIRATION_SECONDS,
        bound_object: dict[str, Any] | None = None,
    ) -> tuple[str, datetime.datetime]:
        """A signed token for ServiceAccount `namespace/sa_name` and when it expires (UTC).

        `bound_object` ({"kind": "Pod"|"Secret", "name", "uid"}) ties the token to that object: the
        authenticator refuses it once the object is gone. Bad arguments raise ValueError (the
        TokenRequest handler validates the user's request before it gets here).
        """
        if not namespace or not sa_name or not sa_uid:
            raise ValueError("token: namespace, ServiceAccount name and uid are required")
        if (
            isinstance(audiences, str)
            or not audiences
            or not all(isinstance(a, str) and a for a in audiences)
        ):
            raise ValueError("token: audiences must be a non-empty list of non-empty strings")
        if not MIN_EXPIRATION_SECONDS <= expiration_seconds <= MAX_EXPIRATION_SECONDS:
            raise ValueError(
                f"token: expiration_seconds must be between {MIN_EXPIRATION_SECONDS} and "
                f"{MAX_EXPIRATION_SECONDS}, got {expiration_seconds}"
            )
        now = int(self.clock.now())
        exp = now + int(expiration_seconds)
        private: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": sa_name, "uid": sa_uid},
        }
        if bound_object is not None:
            ref = _check_bound_object(bound_object)
            private[ref["kind"].lower()] = {"name": ref["name"], "uid": ref["uid"]}
        claims = {
            "iss": self.issuer,
            "sub": f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{sa_name}",
            "aud": list(audiences),
            "exp": exp,
            "iat": now,
            "nbf": now,
            "jti": str(uuid.uuid4()),
            _CLAIM: private,
        }
        token = jwt.encode(claims, self._private, algorithm=self.algorithm, headers={"kid": self.key_id})  # type: ignore[arg-type]
        return token, datetime.datetime.fromtimestamp(exp, datetime.UTC)

    def verify(self, token: str, audiences: Sequence[str]) -> dict[str, Any]:
        """The claims of `token` if this signer issued it, it is valid now and names one of
        `audiences`; else `InvalidToken` with one line saying what is wrong."""
        if not isinstance(token, str) or token.count(".") != 2:
            raise InvalidToken("malformed token: not a JSON Web Token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise InvalidToken("malformed token: unreadable header") from None
        if header.get("alg") != self.algorithm:
            # only our own algorithm: no "none", no HMAC keyed with the public key
            raise InvalidToken(f"bad signature: algorithm {header.get('alg')!r} is not {self.algorithm}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public,  # type: ignore[arg-type]
                algorithms=[self.algorithm],
                audience=list(audiences),
                issuer=self.issuer,
                # time is checked below against the injectable clock
                options={
                    "require": ["iss", "sub", "aud", "exp", "iat", "nbf"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad signature: not signed by this cluster's ServiceAccount key") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken(f"wrong audience: the token is not for {', '.join(audiences)}") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken(f"wrong issuer: the token is not from {self.issuer}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"malformed token: no {exc.claim!r} claim") from None
        except jwt.DecodeError:
            raise InvalidToken("malformed token: undecodable") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"malformed token: {exc}") from None
        now = self.clock.now()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, int) or not isinstance(nbf, int):
            raise InvalidToken("malformed token: exp and nbf must be integers")
        if now >= exp:
            raise InvalidToken("token has expired")
        if now + NBF_LEEWAY_SECONDS < nbf:
            raise InvalidToken("token is not valid yet")
        _check_private_claim(claims)
        return claims


def _check_private_claim(claims: dict[str, Any]) -> None:
    private = claims.get(_CLAIM)
    sa = private.get("serviceaccount") if isinstance(private, dict) else None
    if not isinstance(private, dict) or not isinstance(sa, dict):
        raise InvalidToken(f"malformed token: no {_CLAIM} claim naming a ServiceAccount")
    namespace, name, uid = private.get("namespace"), sa.get("name"), sa.get("uid")
    if not all(isinstance(v, str) and v for v in (namespace, name, uid)):
        raise InvalidToken(f"malformed token: {_CLAIM} lacks namespace, serviceaccount name or uid")
    if claims.get("sub") != f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}":
        raise InvalidToken(f"malformed token: sub does not match the {_CLAIM} claim")
