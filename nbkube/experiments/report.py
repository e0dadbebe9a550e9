"""Write an experiment report to a folder: tables (CSV + markdown), PNG plots and report.html.

Who calls it: `nbkube demo` and the notebooks (`write_report(folder, tables=..., figures=...)`).
report.html reads as something to show others: first a short narrative (what was done, what
happened, the key numbers, which the caller takes from the same summaries the tables show), then one
section per table with its plot beside it (a figure and a table of the same name pair up), and
`texts` under a section's heading say what it shows.
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
    narrative: Sequence[str] = (),
    texts: Mapping[str, str] | None = None,
) -> str:
    """Write `tables` (NAME.csv, NAME.md, shown in the HTML), `figures` (NAME.png, shown beside the
    table of the same name), `data` (NAME.csv only, e.g. a result's full `.df`) and report.html;
    returns report.html's path. `narrative` paragraphs open the report; `texts[NAME]` introduces a
    section; `notes` (how it was run) close it."""
    tables, figures, data = dict(tables or {}), dict(figures or {}), dict(data or {})
    texts = dict(texts or {})
    unknown = [n for n in texts if n not in tables and n not in figures]
    if unknown:
        raise BadRequest(f"report texts {', '.join(sorted(unknown))}: no table or figure of that name")
    _check_names(list(tables), "table")
    _check_names(list(figures), "figure")
    _check_names(list(data), "data")
    os.makedirs(folder, exist_ok=True)
    # render everything before writing anything, so bad input leaves the folder as it was
    from nbkube.experiments.plots import figure_png

    rendered: dict[str, bytes] = {}
    for name, df in tables.items():
        rendered[f"{name}.csv"] = df.to_csv(index=False).encode()
        rendered[f"{name}.md"] = markdown_table(df).encode()
    for name, df in data.items():
        rendered[f"{name}.csv"] = df.to_csv(index=False).encode()
    for name, fig in figures.items():
        rendered[f"{name}.png"] = figure_png(fig)
    parts = [
        "<!DOCTYPE html>",
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;line-height:1.4}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
        ".pair{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}"
        ".pair>div{flex:0 0 auto}.pair>img{flex:1 1 600px;max-width:100%;min-width:0}"
        ".narrative{font-size:1.1em;background:#f6f8fa;border-left:4px solid #1f77b4;padding:.5em 1em}"
        ".notes{color:#666}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if narrative:
        parts.append("<div class='narrative'>")
        parts += [f"<p>{html.escape(p)}</p>" for p in narrative]
        parts.append("</div>")
    # a section per table, in the order given, with its figure beside it; then lone figures
    for name in [*tables, *(f for f in figures if f not in tables)]:
        parts.append(f"<h2 id='{name}'>{html.escape(name)}</h2>")
        if name in texts:
            parts.append(f"<p>{html.escape(texts[name])}</p>")
        parts.append("<div class='pair'>")
        if name in tables:
            parts.append("<div>" + tables[name].to_html(index=False, border=0, na_rep=""))
            parts.append(
                f"<p><a href='{name}.csv'>{name}.csv</a> · <a href='{name}.md'>{name}.md</a></p></div>"
            )
        if name in figures:
            parts.append(f"<img src='{name}.png' alt='{html.escape(name)}'>")
        parts.append("</div>")
    if data:
        links = " · ".join(f"<a href='{n}.csv'>{n}.csv</a>" for n in data)
        parts.append(f"<h2>data</h2><p>every event, request and pod change: {links}</p>")
    parts += [f"<p class='notes'>{html.escape(n)}</p>" for n in notes]
    parts.append("</body></html>")
    rendered["report.html"] = "\n".join(parts).encode()
    for filename, payload in rendered.items():
        _write(os.path.join(folder, filename), payload)
    return os.path.join(folder, "report.html")
