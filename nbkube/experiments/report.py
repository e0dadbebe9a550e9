"""Write an experiment report to a folder: tables (CSV + markdown), PNG plots and report.html.

Who calls it: `nbkube demo` and the notebooks (`write_report(folder, tables=..., figures=...)`).
Every file is written to a temporary name and renamed into place, so a failure never leaves a
half-written file; report.html refers to the PNGs by relative path, so the folder can be moved.
"""

from __future__ import annotations

import html
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nbkube.errors import BadRequest

if TYPE_CHECKING:
    import pandas
    from matplotlib.figure import Figure

__all__ = ["write_report", "markdown_table"]

_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def markdown_table(df: pandas.DataFrame) -> str:
    """A GitHub-style markdown table (no extra dependency such as tabulate)."""
    cols = [str(c) for c in df.columns]

    def cell(v: Any) -> str:
        text = "" if v is None or (isinstance(v, float) and v != v) else str(v)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _write(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _check_names(names: Sequence[str], what: str) -> None:
    for name in names:
        if not _SLUG.match(name):
            raise BadRequest(f"report {what} name {name!r}: use lowercase letters, digits, '.', '_' and '-'")


def write_report(
    folder: str,
    *,
    title: str = "nbkube report",
    tables: Mapping[str, pandas.DataFrame] | None = None,
    figures: Mapping[str, Figure] | None = None,
    data: Mapping[str, pandas.DataFrame] | None = None,
    notes: Sequence[str] = (),
) -> str:
    """Write `tables` (NAME.csv, NAME.md, shown in the HTML), `figures` (NAME.png, shown),
    `data` (NAME.csv only, e.g. a result's full `.df`) and report.html; returns report.html's path."""
    tables, figures, data = dict(tables or {}), dict(figures or {}), dict(data or {})
    _check_names(list(tables), "table")
    _check_names(list(figures), "figure")
    _check_names(list(data), "data")
    os.makedirs(folder, exist_ok=True)
    # render everything before writing anything, so bad input leaves the folder as it was
    import io

    rendered: dict[str, bytes] = {}
    for name, df in tables.items():
        rendered[f"{name}.csv"] = df.to_csv(index=False).encode()
        rendered[f"{name}.md"] = markdown_table(df).encode()
    for name, df in data.items():
        rendered[f"{name}.csv"] = df.to_csv(index=False).encode()
    for name, fig in figures.items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        rendered[f"{name}.png"] = buf.getvalue()
    parts = [
        "<!DOCTYPE html>",
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    parts += [f"<p>{html.escape(n)}</p>" for n in notes]
    for name, df in tables.items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(df.to_html(index=False, border=0, na_rep=""))
        parts.append(f"<p><a href='{name}.csv'>{name}.csv</a> · <a href='{name}.md'>{name}.md</a></p>")
    for name in figures:
        parts.append(f"<h2>{html.escape(name)}</h2><img src='{name}.png' alt='{html.escape(name)}'>")
    if data:
        links = " · ".join(f"<a href='{n}.csv'>{n}.csv</a>" for n in data)
        parts.append(f"<h2>data</h2><p>{links}</p>")
    parts.append("</body></html>")
    rendered["report.html"] = "\n".join(parts).encode()
    for filename, payload in rendered.items():
        _write(os.path.join(folder, filename), payload)
    return os.path.join(folder, "report.html")
