"""What `apply` did, as a list that also reads well in a notebook and a terminal.

Who makes it: `Cluster.apply` (nbkube/cluster.py) wraps the registry's (object, action) pairs in an
`ApplyResult`. It stays a plain list of tuples, so `for obj, action in cluster.apply(...)` and
`cluster.apply(...)[0][1]` keep working; a notebook cell that ends with `cluster.apply(...)` shows a
small table (kind, name, namespace, action) instead of a wall of nested dictionaries.
"""

from __future__ import annotations

from html import escape
from typing import Any

from nbkube.api.meta import Obj

__all__ = ["ApplyResult"]

# the action words of Registry.apply, coloured as the notebook's status badges are
_ACTION_COLOURS = {"created": "#c8e6c9", "configured": "#bbdefb", "unchanged": "#eeeeee"}
_COLUMNS = ("kind", "name", "namespace", "action")


class ApplyResult(list[tuple[Obj, str]]):
    """(object, action) pairs, with a table as text (`repr`) and as HTML (`_repr_html_`)."""

    def __add__(self, other: list[tuple[Obj, str]]) -> ApplyResult:  # type: ignore[override]
        """Two applies shown as one table: `cluster.apply(rc) + cluster.apply(service)`."""
        return ApplyResult([*self, *other])

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(kind, name, namespace, action) per applied object, in the order applied."""
        out = []
        for obj, action in self:
            meta = obj.get("metadata") or {}
            out.append(
                (
                    str(obj.get("kind") or ""),
                    str(meta.get("name") or ""),
                    str(meta.get("namespace") or ""),
                    str(action),
                )
            )
        return out

    def counts(self) -> dict[str, int]:
        """How many objects each action took: {"created": 2, "unchanged": 1}."""
        out: dict[str, int] = {}
        for *_rest, action in self.rows():
            out[action] = out.get(action, 0) + 1
        return out

    def _summary_line(self) -> str:
        if not self:
            return "nothing applied"
        return ", ".join(f"{n} {action}" for action, n in self.counts().items())

    def __repr__(self) -> str:
        rows = self.rows()
        if not rows:
            return "ApplyResult: nothing applied"
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(_COLUMNS)]
        lines = ["  ".join(c.upper().ljust(w) for c, w in zip(_COLUMNS, widths, strict=True)).rstrip()]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        # IPython's pretty printer would otherwise print the list's tuples, not our table
        p.text(repr(self))

    def _repr_html_(self) -> str:
        head = "".join(f'<th style="text-align:left">{c}</th>' for c in _COLUMNS)
        body = []
        for kind, name, namespace, action in self.rows():
            bg = _ACTION_COLOURS.get(action, "#eeeeee")
            body.append(
                f'<tr><td style="text-align:left">{escape(kind)}</td>'
                f'<td style="text-align:left"><b>{escape(name)}</b></td>'
                f'<td style="text-align:left">{escape(namespace)}</td>'
                f'<td style="text-align:left"><span class="nbk-applied" style="background:{bg};'
                f'border-radius:8px;padding:0 6px">{escape(action)}</span></td></tr>'
            )
        return (
            '<div class="nbk-apply" style="font-family:var(--jp-ui-font-family,sans-serif);font-size:12px">'
            f'<table class="nbk-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            f'<div style="color:#666">{escape(self._summary_line())}</div></div>'
        )
