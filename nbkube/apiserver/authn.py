"""Authentication: who is making an API request, from its bearer token or TLS client certificate.

The first step of every request (then authorization, admission, validation), as in Kubernetes.
`Authenticator.authenticate(peer_cert_der, authorization)` looks at, in this order:

1. the `Authorization: Bearer ...` header: a static token from `tokens.csv` in the PKI folder
   (kube-apiserver's `--token-auth-file` format), else a ServiceAccount JWT, verified by
   `security.tokens.TokenSigner`, whose ServiceAccount (and the Pod or Secret it is bound to) must
   still exist with the uid in the token: user `system:serviceaccount:NS:NAME`, groups
   `system:serviceaccounts` and `system:serviceaccounts:NS`;
2. the client certificate the TLS handshake received, verified here (issuer = the cluster CA,
   valid now, client-auth usage: `ClusterPKI.verify_client_cert`): user = CN, groups = O;
3. nothing: `ANONYMOUS`.

Every authenticated user also gets the group `system:authenticated`. A credential that is present
but wrong (a malformed, expired, foreign or revoked token, another Authorization scheme) raises
`errors.Unauthorized` with one line; it never falls back to anonymous. Admin kubeconfigs carry a
client certificate for `ADMIN` (`kubernetes-admin` in `system:masters`). A refused certificate
is also logged, one warning line per distinct certificate (a kept-alive client sends it with every
request).

Bad certificates get 401, as from kube-apiserver. Go's TLS there asks for a client certificate
without verifying it (`tls.RequestClientCert`) and its x509 authenticator answers 401. Python's
`ssl` verifies any certificate a client sends when the server asks for one (CERT_OPTIONAL), so a
foreign-CA or expired certificate used to end in a TLS alert and no HTTP answer. What was weighed:

- OpenSSL flags reachable from `ssl` (`verify_flags`): X509_V_FLAG_NO_CHECK_TIME would let expired
  certificates through, but no flag accepts an unknown issuer (PARTIAL_CHAIN still needs the
  certificate in the trust store), and SSL_CONF's VerifyMode "Request" is SSL_VERIFY_PEER too;
- CERT_NONE: the server then sends no CertificateRequest, so clients never present one;
- TLS 1.3 post-handshake authentication: verified by the same SSL_VERIFY_PEER rules, and kubectl's
  Go client does not support it;
- pyOpenSSL and its verify callback: asyncio's TLS (hence aiohttp's) accepts only an
  `ssl.SSLContext`; it would take a TLS transport of our own over pyOpenSSL memory BIOs, with every
  record crossing cffi in Python, re-doing what asyncio's sslproto does (flow control, shutdown,
  upgrades for exec and port-forward) for the API's hot path;
- what is done (`security/tlsrequest.py`): the same OpenSSL that `ssl` uses gets a verify callback
  that accepts every chain, installed through ctypes on the context's SSL_CTX after checking that
  library and pointer are the ones `ssl` uses. It runs per handshake only, so request latency is
  unchanged; the proof of key possession is still checked by TLS, and everything else here.

A malformed certificate still fails the handshake: OpenSSL cannot parse it, nor can Go's TLS (it
sends a bad_certificate alert too), so no HTTP status exists for it on either server.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from nbkube.errors import NotFound, Unauthorized
from nbkube.security.files import CredentialError
from nbkube.security.pki import ClusterPKI
from nbkube.security.tokenfile import StaticTokenFile
from nbkube.security.tokens import DEFAULT_AUDIENCE, SERVICE_ACCOUNT_PREFIX, InvalidToken, TokenSigner

if TYPE_CHECKING:
    from nbkube.registry.registry import Registry

__all__ = [
    "UserInfo",
    "Authenticator",
    "ANONYMOUS",
    "ADMIN",
    "ADMIN_USER",
    "MASTERS_GROUP",
    "AUTHENTICATED_GROUP",
    "UNAUTHENTICATED_GROUP",
    "SERVICE_ACCOUNTS_GROUP",
    "TOKENS_FILE",
]

AUTHENTICATED_GROUP = "system:authenticated"
UNAUTHENTICATED_GROUP = "system:unauthenticated"
MASTERS_GROUP = "system:masters"
ADMIN_USER = "kubernetes-admin"
SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
TOKENS_FILE = "tokens.csv"
log = logging.getLogger(__name__)

_REFUSED_LOGGED = 1024  # distinct refused certificates remembered, so each is logged once
# the user "extra" keys upstream attaches to ServiceAccount users
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"


@dataclass(frozen=True)
class UserInfo:
    """An authenticated (or anonymous) user, as upstream's user.Info; `extra` holds
    (key, values) pairs sorted by key."""

    name: str
    groups: tuple[str, ...]
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def is_service_account(self) -> bool:
        return self.name.startswith(SERVICE_ACCOUNT_PREFIX)


ANONYMOUS = UserInfo("system:anonymous", (UNAUTHENTICATED_GROUP,))
ADMIN = UserInfo(ADMIN_USER, (MASTERS_GROUP, AUTHENTICATED_GROUP))


def _authenticated(user: UserInfo) -> UserInfo:
    if AUTHENTICATED_GROUP in user.groups:
        return user
    return replace(user, groups=(*user.groups, AUTHENTICATED_GROUP))


class Authenticator:
    """Maps a request's credentials to a `UserInfo`; safe to share between request threads."""

    def __init__(
        self,
        pki: ClusterPKI,
        signer: TokenSigner,
        registry: Registry,
        audiences: Sequence[str] = (DEFAULT_AUDIENCE,),
    ):
        if isinstance(audiences, str) or not audiences:
            raise ValueError("audiences: give a non-empty list of audience names")
        self.pki = pki
        self.signer = signer
        self.registry = registry
        self.audiences = tuple(audiences)
        self.static_tokens = StaticTokenFile(os.path.join(pki.folder, TOKENS_FILE))
        self._refused: set[bytes] = set()
        self._refused_lock = threading.Lock()

    def add_static_token(self, user: str, groups: Iterable[str] = (), uid: str = "") -> str:
        """A new static bearer token for `user` in `groups`, saved in the PKI folder's tokens.csv."""
        return self.static_tokens.add(user, groups, uid)

    def authenticate(self, peer_cert_der: bytes | None, authorization: str | None) -> UserInfo:
        """Who sent a request with this verified client certificate (DER) and Authorization header."""
        if authorization is not None and authorization.strip():
            return _authenticated(self._from_header(authorization.strip()))
        if peer_cert_der:
            try:
                name, groups = self.pki.verify_client_cert(peer_cert_der)
            except CredentialError as exc:
                self._log_refused(peer_cert_der, str(exc))
                raise Unauthorized(str(exc)) from None
            return _authenticated(UserInfo(name, groups))
        return ANONYMOUS

    def _log_refused(self, der: bytes, reason: str) -> None:
        digest = hashlib.sha256(der).digest()
        with self._refused_lock:
            if digest in self._refused:
                return
            if len(self._refused) >= _REFUSED_LOGGED:
                self._refused.clear()
            self._refused.add(digest)
        try:
            user = repr(self.pki.identity_from_cert(der)[0])
        except CredentialError:
            user = "(unreadable)"
        log.warning("401 for client certificate of %s (sha256 %s): %s", user, digest.hex()[:16], reason)

    def _from_header(self, authorization: str) -> UserInfo:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthorized(
                f"unsupported Authorization scheme {scheme[:20]!r}: use a bearer token or a client certificate"
            )
        token = token.strip()
        if not token:
            raise Unauthorized("empty bearer token")
        static = self.static_tokens.lookup(token)
        if static is not None:
            return UserInfo(static.user, static.groups, static.uid)
        if token.count(".") != 2:
            raise Unauthorized("invalid bearer token: neither a known static token nor a JSON Web Token")
        return self._service_account(token)

    def _service_account(self, token: str) -> UserInfo:
        try:
            claims = self.signer.verify(token, self.audiences)
        except InvalidToken as exc:
            raise Unauthorized(f"invalid bearer token: {exc}") from None
        private: dict[str, Any] = claims["kubernetes.io"]
        namespace = str(private["namespace"])
        sa = private["serviceaccount"]
        sa_uid = self._check_exists("ServiceAccount", namespace, str(sa["name"]), str(sa["uid"]))
        extra: list[tuple[str, tuple[str, ...]]] = []
        if isinstance(claims.get("jti"), str):
            extra.append((EXTRA_CREDENTIAL_ID, (f"JTI={claims['jti']}",)))
        for kind in ("Pod", "Secret"):
            ref = private.get(kind.lower())
            if ref is None:
                continue
            if not isinstance(ref, dict):
                raise Unauthorized(f"invalid bearer token: malformed token: bad {kind.lower()} claim")
            name, uid = str(ref.get("name") or ""), str(ref.get("uid") or "")
            self._check_exists(kind, namespace, name, uid)
            if kind == "Pod":
                extra += [(EXTRA_POD_NAME, (name,)), (EXTRA_POD_UID, (uid,))]
        return UserInfo(
            f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{sa['name']}",
            (SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{namespace}"),
            sa_uid,
            tuple(sorted(extra)),
        )

    def _check_exists(self, kind: str, namespace: str, name: str, uid: str) -> str:
        """The uid of `kind` namespace/name if it still exists as the token knew it; else Unauthorized."""
        what = f"{kind} {namespace}/{name}"
        try:
            obj = self.registry.get(kind, name, namespace)
        except NotFound:
            raise Unauthorized(f"invalid bearer token: {what} has been deleted") from None
        meta = obj.get("metadata") or {}
        if meta.get("uid") != uid:
            raise Unauthorized(
                f"invalid bearer token: {what} was deleted and made again since the token was issued"
            )
        if meta.get("deletionTimestamp"):
            raise Unauthorized(f"invalid bearer token: {what} is being deleted")
        return uid
