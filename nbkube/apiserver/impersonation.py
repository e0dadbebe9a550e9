"""User impersonation (`kubectl --as USER --as-group G`), as kube-apiserver's impersonation filter.

A request carrying `Impersonate-User` (and optionally `Impersonate-Group`, `Impersonate-Uid`) is
served as that user, once RBAC allows the real user the `impersonate` verb on each: `users` (or
`serviceaccounts` in the account's namespace for `system:serviceaccount:NS:NAME`), `groups`, and
`uids` in authentication.k8s.io. Extra fields (`Impersonate-Extra-*`) are refused, never dropped.
"""

from __future__ import annotations

from nbkube.apiserver.authn import AUTHENTICATED_GROUP, UserInfo
from nbkube.apiserver.rbac import RBACAuthorizer, RequestAttributes, forbidden
from nbkube.errors import BadRequest

__all__ = ["impersonated_user"]

_SA_PREFIX = "system:serviceaccount:"


def _check(authorizer: RBACAuthorizer, attrs: RequestAttributes) -> None:
    decision = authorizer.authorize(attrs)
    if not decision.allowed:
        raise forbidden(attrs, decision.reason)


def impersonated_user(
    authorizer: RBACAuthorizer, user: UserInfo, headers: dict[str, str], groups: list[str]
) -> UserInfo | None:
    """The user the request asks to act as (None: no impersonation), after checking that `user`
    may impersonate each part; Forbidden (403) or BadRequest (400) otherwise."""
    name = headers.get("impersonate-user", "")
    uid = headers.get("impersonate-uid", "")
    extras = sorted(k for k in headers if k.startswith("impersonate-extra-"))
    if not name:
        if groups or uid or extras:
            raise BadRequest("Impersonate-Group, Impersonate-Uid and Impersonate-Extra need Impersonate-User")
        return None
    if extras:
        raise BadRequest(f"impersonating user extras is not supported ({', '.join(extras)})")
    implied: tuple[str, ...] = ()
    if name.startswith(_SA_PREFIX) and name.count(":") == 3:
        namespace, sa = name[len(_SA_PREFIX) :].split(":")
        _check(authorizer, RequestAttributes(user, "impersonate", "", "serviceaccounts", name=sa, namespace=namespace))
        implied = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")
    else:
        _check(authorizer, RequestAttributes(user, "impersonate", "", "users", name=name))
    for group in groups:
        _check(authorizer, RequestAttributes(user, "impersonate", "", "groups", name=group))
    if uid:
        _check(authorizer, RequestAttributes(user, "impersonate", "authentication.k8s.io", "uids", name=uid))
    all_groups = tuple(dict.fromkeys([*groups, *implied, AUTHENTICATED_GROUP]))
    return UserInfo(name, all_groups, uid)
