"""The TokenRequest subresource: `POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`.

What `kubectl create token NAME [--audience A] [--duration D] [--bound-object-kind Pod
--bound-object-name P]` calls: it reads the request body (`authentication.k8s.io/v1`
TokenRequest), checks it as upstream does (audiences, `expirationSeconds` between 10 minutes and
48 hours, a `boundObjectRef` to a Pod or Secret of the namespace that exists, with the uid given and,
for a Pod, running as this ServiceAccount), has `security.tokens.TokenSigner` issue the JWT and
answers with the TokenRequest completed by `status.token` and `status.expirationTimestamp`. The
API server routes the request here; the authenticator (`authn.py`) accepts the token afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nbkube.api.fieldcheck import Errors
from nbkube.clock import rfc3339
from nbkube.errors import BadRequest, Invalid, NotFound
from nbkube.security.tokens import (
    BOUND_KINDS,
    DEFAULT_AUDIENCE,
    DEFAULT_EXPIRATION_SECONDS,
    MAX_EXPIRATION_SECONDS,
    MIN_EXPIRATION_SECONDS,
    TokenSigner,
)

if TYPE_CHECKING:
    from nbkube.registry.registry import Registry

__all__ = ["create_token", "TOKEN_REQUEST_API_VERSION"]

TOKEN_REQUEST_API_VERSION = "authentication.k8s.io/v1"
_KIND = "TokenRequest"


def create_token(
    registry: Registry,
    signer: TokenSigner,
    namespace: str,
    sa_name: str,
    body: dict[str, Any] | None = None,
    *,
    audiences: Sequence[str] = (DEFAULT_AUDIENCE,),
) -> dict[str, Any]:
    """A new token for ServiceAccount `namespace/sa_name`, as a completed TokenRequest.

    `audiences` is what a request that names none gets (the API server's own). Raises NotFound
    (no such ServiceAccount), BadRequest (not a TokenRequest) or Invalid (field errors).
    """
    sa = registry.get("ServiceAccount", sa_name, namespace)  # NotFound: serviceaccounts "x" not found
    request = {} if body is None else body
    if not isinstance(request, dict):
        raise BadRequest(f"the body of a token request must be a {_KIND} object")
    _check_identity(request, namespace, sa_name)
    e = Errors()
    spec = e.mapping(request, "spec", "") or {}
    wanted = e.strings(spec, "audiences", "spec")
    for i, audience in enumerate(wanted):
        if not audience:
            e.invalid(f"spec.audiences[{i}]", audience, "may not be empty")
    expiration = e.integer(spec, "expirationSeconds", "spec")
    if expiration is not None and expiration < MIN_EXPIRATION_SECONDS:
        e.invalid("spec.expirationSeconds", expiration, "may not specify a duration less than 10 minutes")
    elif expiration is not None and expiration > MAX_EXPIRATION_SECONDS:
        e.invalid(
            "spec.expirationSeconds",
            expiration,
            f"may not specify a duration larger than {MAX_EXPIRATION_SECONDS // 3600} hours",
        )
    bound = _bound_object(e, registry, spec, namespace, sa_name)
    if e:
        raise Invalid(list(e), kind=_KIND, name=sa_name)
    resolved = list(wanted) if wanted else list(audiences)
    seconds = DEFAULT_EXPIRATION_SECONDS if expiration is None else expiration
    meta = sa["metadata"]
    token, expires = signer.issue(namespace, sa_name, str(meta["uid"]), resolved, seconds, bound)
    bound_ref = None
    if bound is not None:
        bound_ref = {"kind": bound["kind"], "apiVersion": "v1", "name": bound["name"], "uid": bound["uid"]}
    return {
        "kind": _KIND,
        "apiVersion": TOKEN_REQUEST_API_VERSION,
        "metadata": {
            "name": sa_name,
            "namespace": namespace,
            "creationTimestamp": rfc3339(signer.clock.now()),
        },
        "spec": {"audiences": resolved, "expirationSeconds": seconds, "boundObjectRef": bound_ref},
        "status": {"token": token, "expirationTimestamp": rfc3339(expires.timestamp())},
    }


def _check_identity(request: dict[str, Any], namespace: str, sa_name: str) -> None:
    kind, api_version = request.get("kind"), request.get("apiVersion")
    if kind not in (None, "", _KIND) or api_version not in (None, "", TOKEN_REQUEST_API_VERSION):
        raise BadRequest(
            f"the body of a token request must be kind {_KIND} in {TOKEN_REQUEST_API_VERSION}, "
            f"got kind {kind!r} in {api_version!r}"
        )
    meta = request.get("metadata")
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise BadRequest("metadata: must be a mapping")
    for key, expected in (("name", sa_name), ("namespace", namespace)):
        if meta.get(key) not in (None, "", expected):
            raise BadRequest(f"metadata.{key}: {meta.get(key)!r} does not match the URL's {expected!r}")


def _bound_object(
    e: Errors, registry: Registry, spec: dict[str, Any], namespace: str, sa_name: str
) -> dict[str, str] | None:
    ref = e.mapping(spec, "boundObjectRef", "spec")
    if ref is None:
        return None
    path = "spec.boundObjectRef"
    kind = e.one_of(ref, "kind", path, BOUND_KINDS, required=True)
    api_version = e.string(ref, "apiVersion", path)
    if api_version not in (None, "", "v1"):
        e.unsupported(f"{path}.apiVersion", api_version, ["v1"])
    name = e.string(ref, "name", path, required=True)
    uid = e.string(ref, "uid", path)
    if not kind or not name:
        return None
    try:
        obj = registry.get(kind, name, namespace)
    except NotFound:
        e.add(f"{path}.name", f'Not found: {kind.lower()}s "{name}" not found in namespace {namespace}')
        return None
    meta = obj.get("metadata") or {}
    if uid and uid != meta.get("uid"):
        e.invalid(
            f"{path}.uid",
            uid,
            f"does not match the uid of {kind.lower()} {name}: it was deleted and made again",
        )
        return None
    if meta.get("deletionTimestamp"):
        e.invalid(f"{path}.name", name, f"{kind.lower()} {name} is being deleted")
        return None
    if kind == "Pod":
        runs_as = (obj.get("spec") or {}).get("serviceAccountName") or "default"
        if runs_as != sa_name:
            e.invalid(
                f"{path}.name",
                name,
                f"pod {name} runs as ServiceAccount {runs_as!r}, not {sa_name!r}",
            )
            return None
    return {"kind": kind, "name": name, "uid": str(meta.get("uid") or "")}
