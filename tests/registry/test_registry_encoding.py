"""The registry's hand-made fast paths give exactly what the library calls they replace would.

`_new_uid` stands in for str(uuid.uuid4()), `_encode` for json.dumps(..., separators=(",", ":"),
ensure_ascii=False) (the same JSON value; orjson may spell a float differently), and the clock's cached `rfc3339` for formatting every call: each was a
measurable share of a create, and each must stay indistinguishable from the original.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from nbkube.clock import rfc3339
from nbkube.errors import TooLarge
from nbkube.registry import registry as registry_module
from nbkube.registry.registry import _encode, _new_uid
from nbkube.store.base import MAX_VALUE_BYTES


def test_new_uids_are_distinct_random_version_4_uuids_in_canonical_text() -> None:
    uids = [_new_uid() for _ in range(3 * registry_module._UID_BATCH + 7)]  # spans several refills
    assert len(set(uids)) == len(uids)
    for text in uids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_reuse_the_parents_pooled_uids() -> None:
    _new_uid()  # make sure the pool holds uids the child would inherit
    pending = list(registry_module._uid_pool)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next uid and leave without running pytest's teardown
        os.write(write, _new_uid().encode())
        os._exit(0)
    os.close(write)
    child_uid = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child_uid) == 36 and child_uid not in pending


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": "v"}},
        {
            "kind": "Pod",
            "metadata": {"name": "é-ünïcode", "labels": {"a": "ß"}, "resourceVersion": "7"},
            "spec": {"n": [1, 2.5, -0.0, True, False, None, 10**20, 1e300], "s": 'q"uo\\te\n\t\u2028'},
        },
        {"nested": [[{}], [], {"a": {"b": {"c": []}}}]},
    ],
)
def test_encode_is_compact_json_without_resource_version(obj: dict[str, Any]) -> None:
    expected = dict(obj)
    if "resourceVersion" in obj.get("metadata", {}):
        expected["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    # the same JSON value as the standard library's compact form (orjson may spell floats differently)
    assert json.loads(_encode(obj)) == expected
    if "spec" not in obj:  # no floats: the very same bytes
        assert _encode(obj) == json.dumps(expected, separators=(",", ":"), ensure_ascii=False).encode()


def test_encode_refuses_what_json_refuses_and_what_is_too_large() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        _encode({"metadata": {}, "x": object()})
    with pytest.raises(TooLarge, match="too large"):
        _encode({"kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"k": "x" * MAX_VALUE_BYTES}})


@pytest.mark.parametrize(
    "ts",
    [0, 1.0, 1_700_000_000, 1_700_000_000.25, 1_700_000_000.9999993, 1_700_000_000.9999996, 1_700_000_001],
)
def test_rfc3339_matches_formatting_each_time(ts: float) -> None:
    for micro in (False, True):
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ"
        expected = datetime.fromtimestamp(ts, tz=UTC).strftime(fmt)
        assert rfc3339(ts, micro) == expected
        assert rfc3339(ts, micro) == expected  # the second call may come from the cache
