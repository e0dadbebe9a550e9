"""nbkube errors as Kubernetes `Status` objects, with the HTTP code each one travels under.

kubectl and client-go read `reason`, `code`, `message` and `details` of a failed response (kubectl
prints `Error from server (NotFound): pods "x" not found` from them, and retries on Conflict), so every
error the registry raises goes through `status_for` and nothing else builds a failure body.
"""

from __future__ import annotations

from typing import Any

from nbkube.api.kinds import KindInfo
from nbkube.errors import Invalid, NbkubeError

__all__ = ["failure", "status_for", "success"]


def failure(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def success(info: KindInfo, name: str, uid: str = "") -> dict[str, Any]:
    """What a delete that removed the object at once returns (Kubernetes' `Status` Success)."""
    details: dict[str, Any] = {"name": name, "kind": info.plural}
    if info.group:
        details["group"] = info.group
    if uid:
        details["uid"] = uid
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def status_for(
    err: BaseException, info: KindInfo | None = None, name: str = ""
) -> tuple[int, dict[str, Any]]:
    """The HTTP code and `Status` body for `err` (anything not an NbkubeError is an InternalError)."""
    if not isinstance(err, NbkubeError):
        return 500, failure(500, "InternalError", f"Internal error occurred: {err}")
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if info is not None:
        details["kind"] = info.plural
        if info.group:
            details["group"] = info.group
    message = str(err)
    if isinstance(err, Invalid):
        kind = err.kind or (info.kind if info else "")
        obj_name = err.name or name
        if obj_name:
            details["name"] = obj_name
        if kind:
            details["kind"] = kind  # kubectl prints `The Pod "x" is invalid: ...` from details.kind
        details["causes"] = [
            {"reason": "FieldValueInvalid", "message": e.message, "field": e.path} for e in err.errors
        ]
        if kind and obj_name:
            message = f'{kind} "{obj_name}" is invalid: {message}'
    causes = getattr(err, "causes", None)
    if causes:
        # a server-side apply conflict: one cause a field, as kube-apiserver's ApplyConflict
        details = {"causes": causes}
    body = failure(err.code, err.reason, message, details)
    token = getattr(err, "continue_token", "")
    if token:
        # an expired list snapshot: the Status's ListMeta carries where to go on (inconsistently)
        body["metadata"]["continue"] = token
    return err.code, body
