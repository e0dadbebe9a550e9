"""The API server's front door: HTTPS with the cluster's certificates, then who is asking, then may they.

kube-apiserver runs every request through authentication, then authorization (RBAC), then
admission; this module is the first two for nbkube's server, and the answers that need the
caller's identity (SelfSubjectAccessReview, SelfSubjectRulesReview, SelfSubjectReview, TokenRequest)
plus the checks that depend on who writes: NodeRestriction and RBAC escalation prevention
(escalation.py: no Role or binding grants what its writer does not hold). `secure_server` builds a
server from a cluster's folder: its PKI (created at first start), ServiceAccount token signer,
authenticator and RBAC authorizer, and the default roles reconciled into the registry.
"""

from __future__ import annotations

import dataclasses
import ssl
from typing import Any

from nbkube.api.meta import Obj
from nbkube.apiserver import selfreviews, tokenrequest
from nbkube.apiserver.authn import ADMIN_USER, ANONYMOUS, MASTERS_GROUP, Authenticator, UserInfo
from nbkube.apiserver.escalation import RBAC_KINDS, check_escalation
from nbkube.apiserver.impersonation import impersonated_user
from nbkube.apiserver.kubeconfig import write_kubeconfig
from nbkube.apiserver.noderestriction import node_name_of, node_restriction
from nbkube.apiserver.rbac import RBACAuthorizer, forbidden, request_attributes
from nbkube.apiserver.rbac_defaults import ensure_default_roles
from nbkube.apiserver.resources import Request, Response
from nbkube.apiserver.routing import CONNECT_SUBRESOURCES, Route
from nbkube.apiserver.server import RequestContext
from nbkube.errors import BadRequest, NotFound, StoreUnavailable, Unauthorized
from nbkube.registry.registry import Registry
from nbkube.security.pki import ClusterPKI
from nbkube.security.tokens import TokenSigner

__all__ = ["ADMIN_GROUPS", "ADMIN_USER", "ClusterGate", "cluster_gate"]

ADMIN_GROUPS = (MASTERS_GROUP,)
_WRITES = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


class ClusterGate:
    """Authentication (client certificates, bearer tokens) and RBAC for one cluster's API server."""

    def __init__(self, registry: Registry, pki: ClusterPKI, signer: TokenSigner, authorizer: RBACAuthorizer):
        self.registry = registry
        self.pki = pki
        self.signer = signer
        self.authenticator = Authenticator(pki, signer, registry)
        self.authorizer = authorizer

    # -- Gate ---------------------------------------------------------------------------------------

    def authenticate(self, ctx: RequestContext) -> None:
        user = self.authenticator.authenticate(ctx.peer_cert, ctx.headers.get("authorization"))
        if user is ANONYMOUS:
            raise Unauthorized("Unauthorized: this API server needs a client certificate or a bearer token")
        ctx.user = impersonated_user(self.authorizer, user, ctx.headers, ctx.impersonate_groups) or user

    def authorize(self, ctx: RequestContext, route: Route | None) -> None:
        user: UserInfo = ctx.user
        # everything the decision depends on: who (RBAC reads only name and groups) and what (the
        # attributes come from method, path and these two query parameters)
        key = (
            user.name,
            user.groups,
            ctx.method,
            ctx.path,
            ctx.query.get("watch"),
            ctx.query.get("fieldSelector"),
            bool(route and route.subresource in CONNECT_SUBRESOURCES),
        )
        if self.authorizer.allowed_at(key):
            return  # a kept-alive client repeats its requests: skip parsing and deciding again
        generation = self.authorizer.generation
        attrs = request_attributes(user, ctx.method, ctx.path, ctx.query)
        decision = self.authorizer.authorize(attrs)
        if decision.allowed and attrs.verb == "get" and key[-1]:
            # a WebSocket upgrade is a GET, yet it runs commands: kube-apiserver (its
            # AuthorizePodWebsocketUpgradeCreatePermission) also asks for `create`, as a POST would
            attrs = dataclasses.replace(attrs, verb="create")
            decision = self.authorizer.authorize(attrs)
        if not decision.allowed:
            raise forbidden(attrs, decision.reason)
        self.authorizer.remember_allowed(key, generation)

    def handle(self, ctx: RequestContext, route: Route, req: Request) -> Response | None:
        kind = route.info.kind
        user: UserInfo = ctx.user
        if kind in ("SelfSubjectAccessReview", "SelfSubjectRulesReview", "SelfSubjectReview"):
            if req.method != "POST":
                raise BadRequest(f"only create is served on {route.info.plural}")
            if kind == "SelfSubjectAccessReview":
                return Response(201, selfreviews.access_review(self.authorizer, user, req.body))
            if kind == "SelfSubjectRulesReview":
                return Response(201, selfreviews.rules_review(self.authorizer, user, req.body))
            return Response(201, _self_subject_review(user))
        if route.subresource == "token":
            if req.method != "POST":
                raise BadRequest("only create is served on serviceaccounts/token")
            body = tokenrequest.create_token(self.registry, self.signer, route.namespace, route.name, req.body)
            return Response(201, body)
        if node_name_of(user) and req.method in _WRITES:
            self._node_restriction(user, route, req)
        if kind in RBAC_KINDS and MASTERS_GROUP not in user.groups:
            check_escalation(self.registry, self.authorizer, user, route, req)
        return None

    def _node_restriction(self, user: UserInfo, route: Route, req: Request) -> None:
        old: Obj | None = None
        if route.name:
            try:
                old = self.registry.get(route.info.kind, route.name, route.namespace)
            except NotFound:
                old = None  # judged as a create
        node_restriction(user, _WRITES[req.method], route.info.kind, req.body, old, route.subresource)

    # -- credentials ----------------------------------------------------------------------------------

    @property
    def ssl_context(self) -> ssl.SSLContext:
        # certificates are judged by the authenticator (401 with the reason), not the handshake
        return self.pki.server_ssl_context(verify_client_certs=False)

    def write_kubeconfig(
        self,
        path: str,
        server_url: str,
        *,
        user: str = ADMIN_USER,
        groups: tuple[str, ...] = ADMIN_GROUPS,
        namespace: str = "default",
        context: str = "nbkube",
    ) -> str:
        """A kubeconfig (0600) for `user` in `groups` with a fresh client certificate of this
        cluster's CA; the admin's by default."""
        cert, key = self.pki.issue_client_cert(user, groups)
        return write_kubeconfig(
            path,
            server_url,
            context,
            ca_pem=self.pki.ca_pem,
            user=user,
            client_cert_pem=cert,
            client_key_pem=key,
            namespace=namespace,
        )

    def stop(self) -> None:
        self.authorizer.stop()


def _self_subject_review(user: UserInfo) -> dict[str, Any]:
    info: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    if user.extra:
        info["extra"] = {k: list(v) for k, v in user.extra}
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "status": {"userInfo": info},
    }


def cluster_gate(registry: Registry, folder: str, hosts: list[str] | None = None) -> ClusterGate:
    """The gate of the cluster whose credentials live in `folder` (its PKI, created 0700 at the
    first start), with the default roles reconciled and the authorizer's cache synced."""
    pki = ClusterPKI(folder).ensure([h for h in hosts or () if h not in ("127.0.0.1", "localhost")])
    signer = TokenSigner(pki.sa_key_pem, pki.sa_pub_pem)
    ensure_default_roles(registry)
    authorizer = RBACAuthorizer(registry)
    authorizer.start()
    if not authorizer.wait_synced():
        authorizer.stop()
        raise StoreUnavailable("the RBAC cache did not sync from the store within 10 s")
    return ClusterGate(registry, pki, signer, authorizer)
