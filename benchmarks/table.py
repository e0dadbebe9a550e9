"""Render `benchmarks/run.py --json` output as a Markdown table, into files between markers.

Why: the README and docs/benchmarks.md quote the figures; writing their tables from the JSON a run
produced means the text and the table cannot disagree. The table goes between the lines
`<!-- bench:start -->` and `<!-- bench:end -->` of each file named (which must have both markers).

    python benchmarks/table.py RESULT.json                       # print the table
    python benchmarks/table.py RESULT.json README.md docs/benchmarks.md   # and write it into them
    python benchmarks/table.py RESULT.json --and MORE.json README.md       # two runs, two tables
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _num(v: float | None) -> str:
    if v is None:
        return "n/a"
    if float(v).is_integer() or abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 0.1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Run: `python benchmarks/run.py{' --quick' if report.get('quick') else ''}` at {report['started']}"
        f" ({report['seconds']:.0f} s) on {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']},"
        f" Python {m['python']}{'; quick sizes (see samples)' if report.get('quick') else ''}.",
        "",
        "| benchmark | figure | nbkube | baseline | baseline value | ratio | baseline kind | samples | load start → end |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        kind = r["baseline_kind"]
        if kind == "published":
            kind = f"published: {r['source']}"
        unit = f" {r['unit']}" if r["unit"] else ""
        value = _num(r["value"]) + (unit if r["value"] is not None else "")
        base = _num(r["baseline_value"]) + unit if r["baseline_value"] is not None else ""
        ratio = f"{r['ratio']:.2f}x" if r.get("ratio") is not None else ""
        name = r["name"] + (f" ({r['note']})" if r.get("note") else "")
        load = f"{r['load_start'][0]:.1f} → {r['load_end'][0]:.1f}"
        cells = [r["benchmark"], name, value, r["baseline"], base, ratio, kind,
                 "" if r.get("samples") is None else str(r["samples"]), load]  # fmt: skip
        lines.append("| " + " | ".join(_cell(str(c)) for c in cells) + " |")
    problems = [b for b in report["benchmarks"] if b["status"] != "ok" or b.get("skipped")]
    for b in problems:
        lines.append("")
        lines.append(f"- `{b['benchmark']}`: {b.get('skipped') or b['status']}")
    return "\n".join(lines) + "\n"


def write_between(path: str, table: str) -> None:
    with open(path) as f:
        text = f.read()
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise SystemExit(f"{path}: needs one {START} line and one {END} line after it")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    with open(path, "w") as f:
        f.write(f"{head}{START}\n{table}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", help="the file `benchmarks/run.py --json` wrote")
    ap.add_argument("files", nargs="*", help="Markdown files to write the table into, between the markers")
    ap.add_argument("--and", dest="more", action="append", default=[], metavar="JSON",
                    help="another run's JSON (e.g. `run.py --only` of benchmarks added since): its own "
                         "table, with its own run line, follows")  # fmt: skip
    args = ap.parse_args(argv)
    tables = []
    for name in [args.json, *args.more]:
        try:
            with open(name) as f:
                report = json.load(f)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"{name}: {exc}") from None
        tables.append(render(report))
    table = "\n".join(tables)
    if not args.files:
        sys.stdout.write(table)
    for path in args.files:
        write_between(path, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
