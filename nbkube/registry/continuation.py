"""Continue tokens of paginated lists, in kube-apiserver's encoding, and the 410 that ends one.

A list with `limit` answers one page and a token for the rest. As upstream, the token is the
unpadded URL-safe base64 of `{"v": "meta.k8s.io/v1", "rv": REVISION, "start": KEY}`: the revision
of the first page's snapshot (every later page is read at that same revision, so the pages make one
consistent list) and the key, relative to the listed prefix, to go on from (the last key sent plus
a NUL byte). Clients treat it as opaque; a token that does not decode to that shape is a 400. When
the store has compacted the snapshot away, `ContinueExpired` (410) carries a fresh token with
revision -1: the rest of the list at the latest revision, which the client may take knowingly.
`Registry.list_page` is the one user.
"""

from __future__ import annotations

import base64
import binascii
import json

from nbkube.errors import BadRequest, Expired

__all__ = ["ContinueExpired", "LATEST", "decode_continue", "encode_continue"]

_VERSION = "meta.k8s.io/v1"
LATEST = -1  # a token's revision meaning "the latest", after its snapshot expired


class ContinueExpired(Expired):
    """The snapshot a continue token reads was compacted away; `continue_token` goes on inconsistently."""

    def __init__(self, continue_token: str):
        self.continue_token = continue_token
        super().__init__(
            "The provided continue parameter is too old to display a consistent list result. You can "
            "start a new list without the continue parameter, or use the continue token in this "
            "response to retrieve the remainder of the results. Continuing with the provided token "
            "results in an inconsistent list - objects that were created, modified, or deleted between "
            "the time the first chunk was returned and now may show up in the list."
        )


def encode_continue(revision: int, start: str) -> str:
    """The token for "the keys from `start` (relative to the listed prefix) at `revision`"."""
    doc = json.dumps({"v": _VERSION, "rv": revision, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(doc.encode()).decode().rstrip("=")


def _invalid(why: str) -> BadRequest:
    return BadRequest(f"continue key is not valid: {why}")


def decode_continue(token: str) -> tuple[int, str]:
    """(revision, start key) of a token; BadRequest naming what is wrong with a tampered one."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = json.loads(raw)
    except (binascii.Error, ValueError) as e:
        raise _invalid(f"not a continue token ({e})") from None
    if not isinstance(doc, dict) or doc.get("v") != _VERSION:
        raise _invalid(f"incorrect encoded start resourceVersion (version {_VERSION})")
    revision, start = doc.get("rv"), doc.get("start")
    if (
        not isinstance(revision, int)
        or isinstance(revision, bool)
        or not (revision > 0 or revision == LATEST)
    ):
        raise _invalid(f"incorrect encoded start resourceVersion (version {_VERSION})")
    if not isinstance(start, str) or not start:
        raise _invalid("encoded start key empty")
    if start.startswith("/") or "/../" in f"/{start}/":
        raise _invalid("encoded start key is outside the listed resource")
    return revision, start
