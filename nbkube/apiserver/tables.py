"""`meta.k8s.io/v1 Table` responses: the server-side printing `kubectl get` asks for.

kubectl sends `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and prints whatever columns the
server returns (priority-1 columns only with `-o wide`), so the columns come from
`nbkube.api.printers`, the same functions behind `nbkube get`. kubectl adds the kind prefix and the
NAMESPACE column itself, from the NAME column's `name` format and from each row's object metadata.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from nbkube.api.kinds import KindInfo
from nbkube.api.meta import Obj
from nbkube.api.printers import table_rows

__all__ = ["INCLUDE_OBJECT", "partial_metadata", "to_table", "wants_table"]

INCLUDE_OBJECT = ("None", "Metadata", "Object")


def wants_table(accept: str) -> bool:
    """True when the Accept header asks for a Table (kubectl's human-readable `get`)."""
    return any("as=Table" in part.replace(" ", "") for part in accept.split(","))


def partial_metadata(obj: Obj) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


def _columns(info: KindInfo) -> list[dict[str, Any]]:
    narrow, _ = table_rows(info.kind, [], wide=False)
    wide, _ = table_rows(info.kind, [], wide=True)
    defs = []
    for i, header in enumerate(wide):
        defs.append(
            {
                "name": header,
                "type": "string",
                "format": "name" if header == "NAME" else "",
                "description": "",
                "priority": 0 if i < len(narrow) else 1,
            }
        )
    return defs


def to_table(
    info: KindInfo,
    objs: Sequence[Obj],
    *,
    resource_version: str = "",
    include_object: str = "Metadata",
    with_columns: bool = True,
    now: float | None = None,
) -> dict[str, Any]:
    """A Table of `objs`; `with_columns=False` leaves out the definitions (watch events after the first)."""
    at = time.time() if now is None else now
    rows = []
    for obj in objs:
        _, cells = table_rows(info.kind, [obj], wide=True, now=at)
        row: dict[str, Any] = {"cells": cells[0]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    table: dict[str, Any] = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version} if resource_version else {},
        "columnDefinitions": _columns(info) if with_columns else [],
        "rows": rows,
    }
    return table
