"""Errors every layer shares, shaped after the Kubernetes `Status` reasons.

They live at the bottom of the package so that the store, the registry, the CLI and (later) the HTTP
API server raise and translate the same types: the API server maps `reason`/`code` straight onto a
`kind: Status` body, and the CLI prints `str(error)` as its one line on stderr.
"""

from __future__ import annotations

from dataclasses import dataclass


class NbkubeError(Exception):
    """Base of every error a user may see; `str()` is the one-line message."""

    reason = "InternalError"
    code = 500


class BadRequest(NbkubeError):
    reason = "BadRequest"
    code = 400


@dataclass(frozen=True)
class FieldError:
    """One problem with one field, e.g. `spec.template.spec.containers[0].image: required`."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class Invalid(NbkubeError):
    """An object failed validation. `source` names the file and document when known."""

    reason = "Invalid"
    code = 422

    def __init__(self, errors: list[FieldError], source: str = "", kind: str = "", name: str = ""):
        self.errors = list(errors)
        self.source = source
        self.kind = kind
        self.name = name
        super().__init__(self._message())

    def _message(self) -> str:
        detail = "; ".join(str(e) for e in self.errors) or "invalid object"
        prefix = f"{self.source}: " if self.source else ""
        return prefix + detail

    def with_source(self, source: str) -> Invalid:
        return Invalid(self.errors, source=source, kind=self.kind, name=self.name)


class ManifestError(BadRequest):
    """A manifest file could not be read or parsed (bad YAML, not a mapping, unknown kind...)."""


class NotFound(NbkubeError):
    reason = "NotFound"
    code = 404


class AlreadyExists(NbkubeError):
    reason = "AlreadyExists"
    code = 409


class Conflict(NbkubeError):
    """Optimistic concurrency failed: the object changed since the resourceVersion the caller read."""

    reason = "Conflict"
    code = 409


class Unauthorized(NbkubeError):
    """The request carried no credential the API server accepts (none, malformed, expired, foreign)."""

    reason = "Unauthorized"
    code = 401


class Forbidden(NbkubeError):
    """Admission refused the request (quota exceeded, namespace terminating, ...)."""

    reason = "Forbidden"
    code = 403


class Expired(NbkubeError):
    """A watch or list asked for a revision that was compacted away: relist and watch again."""

    reason = "Expired"
    code = 410


class StoreUnavailable(NbkubeError):
    """The backing store cannot be reached or written (etcd down, SQLite locked or read-only)."""

    reason = "ServiceUnavailable"
    code = 503


class TooLarge(NbkubeError):
    reason = "RequestEntityTooLarge"
    code = 413


class TooManyRequests(NbkubeError):
    """Try again later: e.g. an eviction that would break a PodDisruptionBudget. `causes` are
    Kubernetes StatusCauses (`{"reason": "DisruptionBudget", "message": ...}`) that name why."""

    reason = "TooManyRequests"
    code = 429

    def __init__(self, message: str, causes: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.causes = list(causes or [])
