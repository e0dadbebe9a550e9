"""Table responses: the columns kubectl prints, wide ones at priority 1, rows with their objects."""

from __future__ import annotations

from typing import Any

import pytest

from nbkube.api.kinds import lookup
from nbkube.apiserver.tables import to_table, wants_table

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"


def _headers(table: dict[str, Any], priority: int | None = None) -> list[str]:
    return [c["name"] for c in table["columnDefinitions"] if priority is None or c["priority"] == priority]


def test_wants_table() -> None:
    assert wants_table(TABLE_ACCEPT)
    assert not wants_table("application/json")


def test_pod_columns_and_cells() -> None:
    pod = {
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "c"}], "nodeName": "node-1"},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.5",
            "containerStatuses": [{"ready": True, "restartCount": 2}],
        },
    }
    now = 1767225600.0 + 90  # 2026-01-01T00:01:30Z
    table = to_table(lookup("pods"), [pod], resource_version="7", now=now)
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "7"}
    assert _headers(table, 0) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert _headers(table, 1) == ["IP", "NODE"]
    assert table["columnDefinitions"][0]["format"] == "name"
    row = table["rows"][0]
    assert row["cells"] == ["web", "1/1", "Running", "2", "90s", "10.0.0.5", "node-1"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["namespace"] == "default"


@pytest.mark.parametrize(
    ("kind", "narrow"),
    [
        ("nodes", ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]),
        ("services", ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]),
        ("rc", ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]),
        ("rs", ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]),
        ("deploy", ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]),
        ("endpoints", ["NAME", "ENDPOINTS", "AGE"]),
        ("namespaces", ["NAME", "STATUS", "AGE"]),
        ("events", ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]),
        ("configmaps", ["NAME", "DATA", "AGE"]),
        ("leases", ["NAME", "HOLDER", "AGE"]),
        ("limitranges", ["NAME", "AGE"]),
    ],
)
def test_columns_per_kind(kind: str, narrow: list[str]) -> None:
    assert _headers(to_table(lookup(kind), []), 0) == narrow


def test_include_object() -> None:
    cm = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c"}, "data": {"a": "1"}}
    info = lookup("cm")
    assert to_table(info, [cm], include_object="Object")["rows"][0]["object"] == cm
    assert "object" not in to_table(info, [cm], include_object="None")["rows"][0]
    assert to_table(info, [cm], with_columns=False)["columnDefinitions"] == []
