"""`nbkube describe`: its event filter and how it shows Secrets."""

from __future__ import annotations

from typing import Any

from nbkube.cli.describe import describe, events_for

NOW = 1_700_000_000.0
CREATED = "2023-11-14T22:11:40Z"  # NOW - 100 s


def _obj(kind: str, name: str, **rest: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": CREATED},
        **rest,
    }


def test_describe_filters_events_by_uid_and_hides_secret_values() -> None:
    secret = _obj("Secret", "s", type="Opaque", data={"password": "aHVudGVyMg=="})
    secret["metadata"]["uid"] = "u1"
    mine = {
        "involvedObject": {"kind": "Secret", "name": "s", "uid": "u1"},
        "reason": "Mine",
        "lastTimestamp": CREATED,
    }
    other = {
        "involvedObject": {"kind": "Secret", "name": "s", "uid": "u0"},
        "reason": "OldOne",
        "lastTimestamp": CREATED,
    }
    assert events_for(secret, [mine, other]) == [mine]
    text = describe(secret, [mine, other], now=NOW)
    assert "Mine" in text and "OldOne" not in text
    assert "aHVudGVyMg==" not in text and "hunter2" not in text
    assert "password:" in text and "7 bytes" in text
