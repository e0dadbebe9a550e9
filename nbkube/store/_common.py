"""Argument checks and key-range helpers that both store backends share.

Kept out of `base.py` (the Protocol) so that the contract stays declarative; called by `sqlite.py`
and `etcd.py` before any write so that bad input fails the same way on both and nothing is written.
"""

from __future__ import annotations

from nbkube.errors import BadRequest, TooLarge
from nbkube.store.base import MAX_VALUE_BYTES


def check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise BadRequest(f"store key must be a non-empty string, got {key!r}")


def check_value(key: str, value: bytes) -> None:
    if not isinstance(value, (bytes, bytearray, memoryview)):  # a tuple: faster than a union
        raise BadRequest(f"{key}: store value must be bytes, got {type(value).__name__}")
    if len(value) > MAX_VALUE_BYTES:
        raise TooLarge(
            f"{key}: value of {len(value)} bytes exceeds the store limit of {MAX_VALUE_BYTES} bytes"
        )


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix` (None = no bound).

    SQLite compares TEXT bytewise in UTF-8, which orders like code points, so bumping the last code
    point gives the exclusive upper bound of the prefix range (as etcd's range_end does for bytes).
    """
    while prefix:
        nxt = ord(prefix[-1]) + 1
        if 0xD800 <= nxt <= 0xDFFF:  # surrogates cannot be encoded; skip to the next real one
            nxt = 0xE000
        if nxt <= 0x10FFFF:
            return prefix[:-1] + chr(nxt)
        prefix = prefix[:-1]
    return None
