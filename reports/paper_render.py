"""Renderers of the paper-shaped tables (paper.py): Markdown, LaTeX ready to paste, CSV and HTML.

Short headers (IN / V2 / Avg) with the metric in the caption; LaTeX uses booktabs with a spanning header
per task and is scaled to the text column; the row groups (plain methods, + WiSE-FT, published) are split
by rules. Fixed formats, so golden tests compare bytes."""
from __future__ import annotations

import html
import re

from bench.reports.labels import csv_num, num, signed, split_row
from bench.reports.paper import PaperTable
from bench.reports.tables import DASH, _csv, tex


def cell_text(table: PaperTable, row, key: str) -> str:
    cell = row.cells.get(key)
    if cell is None:
        return DASH
    if row.source == "reference":
        return num(cell.ref) + (f" (Δ {signed(cell.delta)})" if cell.delta is not None else "")
    return num(cell.mean) + (f" ± {num(cell.std)}" if cell.std is not None else "")


def _texts(table: PaperTable, mark) -> list[list[str]]:
    out = []
    for row in table.rows:
        cells = []
        for col in table.columns:
            text = cell_text(table, row, col.key)
            cell = row.cells.get(col.key)
            cells.append(mark(text) if cell is not None and cell.bold else text)
        out.append([row.label] + cells)
    return out


def _group(row) -> tuple:
    return (row.source, row.source == "ours" and split_row(row.id)[1])


def markdown(table: PaperTable) -> str:
    lines = ["| Method | " + " | ".join(c.header for c in table.columns) + " |",
             "|:---|" + "|".join("---:" for _ in table.columns) + "|"]
    for cells in _texts(table, lambda t: f"**{t}**"):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def latex(table: PaperTable) -> str:
    cols = table.columns
    label = "tab:" + re.sub(r"[^a-z0-9]+", "-", f"{table.model}-{table.name}".lower()).strip("-")
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{tex(table.caption)}}}", rf"\label{{{label}}}",
             r"\resizebox{\columnwidth}{!}{%", rf"\begin{{tabular}}{{l{'c' * len(cols)}}}", r"\toprule"]
    if any(c.group for c in cols):
        spans, rules, start = [], [], 2
        for group, width in _runs([c.group for c in cols]):
            spans.append(rf"\multicolumn{{{width}}}{{c}}{{{tex(group)}}}" if group else "")
            if group:
                rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
            start += width
        lines += [" & ".join([""] + spans) + r" \\", " ".join(rules)]
    lines.append(" & ".join(["Method"] + [tex(c.label) for c in cols]) + r" \\")
    lines.append(r"\midrule")
    previous = None
    for row, cells in zip(table.rows, _texts(table, lambda t: f"\x00{t}\x01")):
        if previous is not None and _group(row) != previous:
            lines.append(r"\midrule")
        previous = _group(row)
        lines.append(" & ".join(tex(c).replace("\x00", r"\textbf{").replace("\x01", "}") for c in cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(lines)


def _runs(groups: list[str]) -> list[tuple[str, int]]:
    """Consecutive equal groups -> (group, width); ungrouped columns stay one each."""
    out: list[tuple[str, int]] = []
    for g in groups:
        if out and g and out[-1][0] == g:
            out[-1] = (g, out[-1][1] + 1)
        else:
            out.append((g, 1))
    return out


def to_latex(tables: list[PaperTable], intro: list[str]) -> str:
    head = [f"% {tex(line)}" for line in intro]
    head += [r"% Needs \usepackage{booktabs} and \usepackage{graphicx} (for \resizebox) in the preamble.", ""]
    return "\n".join(head) + "\n\n".join(latex(t) for t in tables) + "\n"


def to_csv(tables: list[PaperTable], selection: str) -> str:
    """One line per paper cell: the table, the row, the short header and what it averages."""
    head = ["model", "table", "row", "method", "source", "column", "parts", "n", "mean", "spread", "spread_kind",
            "reference", "delta", "selection"]
    rows = []
    for t in tables:
        for row in t.rows:
            for col in t.columns:
                c = row.cells.get(col.key)
                parts = ";".join(f"{task}:{key}" for task, key in col.parts)
                rows.append([t.model, t.name, row.id, row.label, row.source, col.header, parts,
                             c.n if c and row.source == "ours" else "", csv_num(c.mean if c else None),
                             csv_num(c.std if c else None), t.spread, csv_num(c.ref if c else None),
                             csv_num(c.delta if c else None), selection])
    return _csv(head, rows)


def html_table(table: PaperTable) -> str:
    """Two header rows when columns are grouped; the page's CSS lets a wide table scroll inside its box."""
    lines = ['<div class="wide"><table>', f"<caption>{html.escape(table.caption)}</caption>", "<thead>"]
    if any(c.group for c in table.columns):
        spans = "".join(f'<th colspan="{w}">{html.escape(g)}</th>' for g, w in _runs([c.group for c in table.columns]))
        lines.append(f"<tr><th></th>{spans}</tr>")
    lines.append("<tr><th>Method</th>" + "".join(f"<th>{html.escape(c.label)}</th>" for c in table.columns) + "</tr>")
    lines += ["</thead>", "<tbody>"]
    for row, cells in zip(table.rows, _texts(table, lambda t: f"\x00{t}\x01")):
        tds = "".join("<td>" + html.escape(c).replace("\x00", "<strong>").replace("\x01", "</strong>") + "</td>"
                      for c in cells)
        lines.append(f'<tr class="{row.source}">{tds}</tr>')
    lines += ["</tbody>", "</table></div>"]
    return "\n".join(lines)


def to_markdown(tables: list[PaperTable], intro: list[str], plots: dict) -> str:
    """The whole report in the paper layout; each model's figures (`plots`: (model, task) -> [(alt, path)])
    follow its tables."""
    out = [f"# {intro[0]}", ""]
    for line in intro[1:]:
        out += [line, ""]
    for model in dict.fromkeys(t.model for t in tables):
        out += [f"## Model: {model}", ""]
        for table in (t for t in tables if t.model == model):
            out += [f"Table: {table.caption}", "", markdown(table), ""]
        for (m, _task), items in plots.items():
            if m == model:
                out += [line for alt, path in items for line in (f"![{alt}]({path})", "")]
    return "\n".join(out).rstrip("\n") + "\n"
