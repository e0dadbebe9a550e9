"""SelfSubjectAccessReview and SelfSubjectRulesReview (authorization.k8s.io/v1): "may I?" and "what
may I?", asked by `kubectl auth can-i VERB RESOURCE [-n NS]` and `kubectl auth can-i --list`.

The API server answers a POST of either kind (any authenticated user may: `system:basic-user`) by
calling `access_review` or `rules_review` with the requesting user and the decoded body; both build
the response object as kube-apiserver's registry/authorization storage does.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

from nbkube.api.fieldcheck import Errors
from nbkube.apiserver.rbac import Decision, RequestAttributes, RuleSet, Subject
from nbkube.errors import BadRequest, Invalid

__all__ = ["GROUP_VERSION", "access_review", "rules_review"]

GROUP_VERSION = "authorization.k8s.io/v1"


class Authorizer(Protocol):
    def authorize(self, attrs: RequestAttributes) -> Decision: ...

    def resolve_rules(self, user: Subject, namespace: str) -> RuleSet: ...


def _body(body: Any, kind: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"a {kind} must be an object, got {type(body).__name__}")
    if body.get("kind") not in (None, "", kind) or body.get("apiVersion") not in (None, "", GROUP_VERSION):
        raise BadRequest(
            f"expected {kind} in {GROUP_VERSION}, got {body.get('kind')!s} in {body.get('apiVersion')!s}"
        )
    return body


def _str(d: dict[str, Any], key: str) -> str:
    value = d.get(key)
    return value if isinstance(value, str) else ""


def access_review(authorizer: Authorizer, user: Subject, body: Any) -> dict[str, Any]:
    """The SelfSubjectAccessReview `body` with `status` filled in for `user`."""
    review = copy.deepcopy(_body(body, "SelfSubjectAccessReview"))
    e = Errors()
    spec = e.mapping(review, "spec", "", required=True)
    if spec is None:
        raise Invalid(list(e), kind="SelfSubjectAccessReview")
    ra = e.mapping(spec, "resourceAttributes", "spec")
    nra = e.mapping(spec, "nonResourceAttributes", "spec")
    if ra is not None and nra is not None:
        e.invalid(
            "spec.nonResourceAttributes", nra, "cannot be specified in combination with resourceAttributes"
        )
    elif ra is None and nra is None and not e:
        e.invalid(
            "spec.resourceAttributes",
            None,
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )
    if e:
        raise Invalid(list(e), kind="SelfSubjectAccessReview")
    if ra is not None:
        attrs = RequestAttributes(
            user,
            _str(ra, "verb"),
            api_group=_str(ra, "group"),
            resource=_str(ra, "resource"),
            subresource=_str(ra, "subresource"),
            name=_str(ra, "name"),
            namespace=_str(ra, "namespace"),
            api_version=_str(ra, "version"),
        )
    else:
        assert nra is not None
        attrs = RequestAttributes(user, _str(nra, "verb"), path=_str(nra, "path"), is_resource_request=False)
    decision = authorizer.authorize(attrs)
    # RBAC never denies outright (it has no opinion when no rule allows), so `denied` stays unset
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    review["apiVersion"], review["kind"] = GROUP_VERSION, "SelfSubjectAccessReview"
    review.setdefault("metadata", {"creationTimestamp": None})
    review["status"] = status
    return review


def rules_review(authorizer: Authorizer, user: Subject, body: Any) -> dict[str, Any]:
    """A SelfSubjectRulesReview answer: every rule `user` has in `spec.namespace`."""
    spec = _body(body, "SelfSubjectRulesReview").get("spec")
    namespace = spec.get("namespace") if isinstance(spec, dict) else None
    if not isinstance(namespace, str) or not namespace:
        raise BadRequest("no namespace on request")  # kube-apiserver's words
    rules = authorizer.resolve_rules(user, namespace)
    status: dict[str, Any] = {
        "resourceRules": [r.to_dict() for r in rules.resource_rules],
        "nonResourceRules": [r.to_dict() for r in rules.non_resource_rules],
        "incomplete": False,
    }
    if rules.errors:
        status["evaluationError"] = ", ".join(rules.errors)
    return {
        "kind": "SelfSubjectRulesReview",
        "apiVersion": GROUP_VERSION,
        "metadata": {"creationTimestamp": None},
        "spec": {},
        "status": status,
    }
