"""HTML for Jupyter's rich display: one object as a small card, a list of objects as a table.

Called by the `_repr_html_` methods of views.py (and so by anything a notebook cell returns) and by
the dashboard for its chips. Everything that comes from an object is passed through `html.escape`:
names, labels and messages are user input and a notebook renders HTML as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from nbkube.api.meta import Obj
from nbkube.notebook.summary import COLOURS, columns_for, kind_of, row_of, status_of

__all__ = [
    "badge",
    "chip",
    "label_chips",
    "object_card",
    "table",
    "object_table",
    "error_line",
    "cluster_card",
]

_FONT = "font-family:var(--jp-ui-font-family,sans-serif);font-size:12px"


def badge(word: str, colour: str) -> str:
    """A rounded status badge (`colour` is a name from summary.COLOURS)."""
    bg = COLOURS.get(colour, COLOURS["grey"])
    return (
        f'<span class="nbk-badge nbk-{escape(colour)}" style="background:{bg};color:#222;'
        f'border-radius:8px;padding:1px 7px;white-space:nowrap">{escape(word)}</span>'
    )


def chip(text: str, colour: str, title: str = "") -> str:
    """A small pill used for labels and for pods in the dashboard."""
    bg = COLOURS.get(colour, COLOURS["grey"])
    tip = f' title="{escape(title)}"' if title else ""
    return (
        f'<span class="nbk-chip nbk-{escape(colour)}"{tip} style="display:inline-block;background:{bg};'
        f"color:#222;border-radius:10px;padding:1px 8px;margin:1px 2px;font-size:11px;"
        f'white-space:nowrap">{escape(text)}</span>'
    )


def label_chips(labels: dict[str, str] | None) -> str:
    return "".join(chip(f"{k}={v}", "blue") for k, v in sorted((labels or {}).items()))


def object_card(obj: Obj) -> str:
    """A card: kind, namespace/name, status badge, a few key fields and the labels as chips."""
    meta = obj.get("metadata") or {}
    kind = kind_of(obj)
    word, colour = status_of(obj)
    name = str(meta.get("name") or "")
    ns = str(meta.get("namespace") or "")
    title = f"{ns}/{name}" if ns else name
    row = row_of(obj)
    skip = {"namespace", "name", "labels", "status"}
    fields = "".join(
        f'<tr><td style="color:#666;padding:0 8px 0 0">{escape(str(k))}</td>'
        f'<td style="padding:0">{escape(str(v))}</td></tr>'
        for k, v in row.items()
        if k not in skip and v not in ("", None)
    )
    border = COLOURS.get(colour, COLOURS["grey"])
    return (
        f'<div class="nbk-card" style="{_FONT};display:inline-block;border:1px solid #ccc;'
        f'border-left:6px solid {border};border-radius:4px;padding:6px 10px;margin:2px">'
        f'<div><span style="color:#666">{escape(kind)}</span> <b>{escape(title)}</b> {badge(word, colour)}</div>'
        f'<table style="margin:4px 0;border:none">{fields}</table>'
        f"<div>{label_chips(meta.get('labels'))}</div></div>"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], colours: Sequence[str] | None = None) -> str:
    """A plain HTML table; `colours` (one per row, optional) marks the STATUS cell (else the first)."""
    lowered = [str(h).lower() for h in headers]
    mark = lowered.index("status") if "status" in lowered else 0
    head = "".join(f'<th style="text-align:left">{escape(str(h))}</th>' for h in headers)
    body = []
    for i, row in enumerate(rows):
        cells = [escape("" if v is None else str(v)) for v in row]
        if colours is not None and len(cells) > mark:
            bg = COLOURS.get(colours[i], COLOURS["grey"])
            cells[mark] = (
                f'<span class="nbk-{escape(colours[i])}" style="background:{bg};border-radius:8px;'
                f'padding:0 6px">{cells[mark]}</span>'
            )
        body.append("<tr>" + "".join(f'<td style="text-align:left">{c}</td>' for c in cells) + "</tr>")
    return (
        f'<table class="nbk-table" style="{_FONT}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def object_table(kind: str, objs: Sequence[Obj]) -> str:
    """Objects of one kind as a table with the view columns; status cells carry the status colour."""
    cols = columns_for(kind)
    if not objs:
        return f'<div style="{_FONT};color:#666">No {escape(kind)} objects.</div>'
    rows = []
    colours = []
    for o in objs:
        row = row_of(o)
        rows.append([row[c] for c in cols])
        colours.append(status_of(o)[1])
    return table(cols, rows, colours)


def error_line(message: str) -> str:
    """One short red line, for user errors shown by the magics."""
    return f'<span style="color:#c00">{escape(message)}</span>'


def cluster_card(title: str, nodes: Sequence[Obj], pods: Sequence[Obj], details: str = "") -> str:
    """A cluster at a glance (LocalCluster's `_repr_html_`): node badges and pod counts by status."""
    node_badges = " ".join(
        f"{escape(str((n.get('metadata') or {}).get('name') or ''))} {badge(*status_of(n))}" for n in nodes
    )
    counts: dict[tuple[str, str], int] = {}
    for p in pods:
        st = status_of(p)
        counts[st] = counts.get(st, 0) + 1
    pod_badges = " ".join(badge(f"{word}: {n}", colour) for (word, colour), n in sorted(counts.items()))
    return (
        f'<div class="nbk-cluster" style="{_FONT};border:1px solid #ccc;border-radius:4px;padding:6px 10px">'
        f'<div><b>{escape(title)}</b> <span style="color:#666">{escape(details)}</span></div>'
        f"<div>{len(nodes)} nodes: {node_badges}</div>"
        f"<div>{len(pods)} pods {pod_badges}</div></div>"
    )


def stopped_card(title: str) -> str:
    """A stopped cluster's `_repr_html_`: it has no store left to read, so only its name and state."""
    return (
        f'<div class="nbk-cluster" style="{_FONT};border:1px solid #ccc;border-radius:4px;padding:6px 10px">'
        f"<div><b>{escape(title)}</b> {badge('stopped', 'grey')}</div></div>"
    )
