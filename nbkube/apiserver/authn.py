"""Authentication: who is making an API request, from its bearer token or TLS client certificate.

The first step of every request (then authorization, admission, validation), as in Kubernetes.
`Authenticator.authenticate(peer_cert_der, authorization)` looks at, in this order:

1. the `Authorization: Bearer ...` header: a static token from `tokens.csv` in the PKI folder
   (kube-apiserver's `--token-auth-file` format), else a ServiceAccount JWT, verified by
   `security.tokens.TokenSigner`, whose ServiceAccount (and the Pod or Secret it is bound to) must
   still exist with the uid in the token: user `system:serviceaccount:NS:NAME`, groups
   `system:serviceaccounts` and `system:serviceaccounts:NS`;
2. the client certificate the TLS handshake verified (`ClusterPKI.server_ssl_context`): user = CN,
   groups = O;
3. nothing: `ANONYMOUS`.

Every authenticated user also gets the group `system:authenticated`. A credential that is present
but wrong (a malformed, expired, foreign or revoked token, another Authorization scheme) raises
`errors.Unauthorized` with one line; it never falls back to anonymous. Admin kubeconfigs carry a
client certificate for `ADMIN` (`kubernetes-admin` in `system:masters`).
"""

from __future__ import annotations

import os
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
                raise Unauthorized(str(exc)) from None
            return _authenticated(UserInfo(name, groups))
        return ANONYMOUS

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
