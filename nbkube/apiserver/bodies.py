"""Request bodies: the bytes a client sent, decoded into the JSON shape the resource handlers take.

JSON (and the JSON patch types) always; Kubernetes protobuf where `protobuf` knows the kind; any
other format (CBOR, YAML, unknown protobuf) is a 415 that tells the client to send JSON. Kept apart
from the HTTP library so the same decoding serves any transport.
"""

from __future__ import annotations

from typing import Any

import yaml

from nbkube.api import wirejson
from nbkube.apiserver import protobuf
from nbkube.apiserver.resources import APPLY_PATCH, UnsupportedMediaType
from nbkube.errors import BadRequest

__all__ = ["MAX_BODY_BYTES", "decode"]

MAX_BODY_BYTES = 3 * 1024 * 1024  # the apiserver's request size limit


def decode(raw: bytes, content_type: str, method: str) -> Any:
    """The decoded body of a `method` request (None when there is none)."""
    if method not in ("POST", "PUT", "PATCH", "DELETE") or not raw.strip():
        return None
    ctype = (content_type or "application/json").split(";")[0].strip()
    if ctype == "application/vnd.kubernetes.protobuf" and method in ("POST", "PUT", "DELETE"):
        return protobuf.decode(raw)
    if ctype == APPLY_PATCH:
        # server-side apply sends YAML (kubectl sends JSON, which is YAML too)
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise BadRequest(f"the apply patch is not valid YAML: {' '.join(str(e).split())}") from None
    if ctype == "application/yaml" or not ctype.endswith("json"):
        raise UnsupportedMediaType(f'the body of the request was in an unknown format ("{ctype}"); send JSON')
    return wirejson.loads_bounded(raw)  # BadRequest for bad JSON and for nesting past its bound
