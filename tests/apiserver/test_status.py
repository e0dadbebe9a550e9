"""Every nbkube error becomes a Kubernetes Status with the matching HTTP code."""

from __future__ import annotations

import pytest

from nbkube.api.kinds import lookup
from nbkube.apiserver.status import status_for, success
from nbkube.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    Expired,
    FieldError,
    Forbidden,
    Invalid,
    NotFound,
    StoreUnavailable,
    TooLarge,
)


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (NotFound('pods "x" not found'), 404, "NotFound"),
        (AlreadyExists('pods "x" already exists'), 409, "AlreadyExists"),
        (Conflict("modified"), 409, "Conflict"),
        (BadRequest("bad"), 400, "BadRequest"),
        (Forbidden("quota"), 403, "Forbidden"),
        (Expired("too old"), 410, "Expired"),
        (TooLarge("big"), 413, "RequestEntityTooLarge"),
        (StoreUnavailable("down"), 503, "ServiceUnavailable"),
        (RuntimeError("boom"), 500, "InternalError"),
    ],
)
def test_error_maps_to_status_and_code(error: Exception, code: int, reason: str) -> None:
    got_code, body = status_for(error, lookup("pods"), "x")
    assert got_code == code
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["reason"] == reason and body["code"] == code
    if isinstance(error, NotFound):
        assert body["message"] == 'pods "x" not found'
        assert body["details"] == {"name": "x", "kind": "pods"}


def test_invalid_carries_causes_and_kind() -> None:
    err = Invalid([FieldError("spec.containers[0].image", "required")], kind="Pod", name="web")
    code, body = status_for(err, lookup("pods"))
    assert code == 422
    assert body["message"].startswith('Pod "web" is invalid: spec.containers[0].image: required')
    assert body["details"]["kind"] == "Pod" and body["details"]["name"] == "web"
    assert body["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "message": "required", "field": "spec.containers[0].image"}
    ]


def test_success_names_group() -> None:
    body = success(lookup("deploy"), "web", "u1")
    assert body["status"] == "Success"
    assert body["details"] == {"name": "web", "kind": "deployments", "group": "apps", "uid": "u1"}
