"""Renderers: tables -> Markdown (hand-rolled: pandas' to_markdown needs tabulate), LaTeX (booktabs, by hand
so every byte is ours) and CSV (long and wide, plus the per-seed selections and the WiSE-FT curves).
All output is sorted and fixed-format, so golden tests can compare bytes."""
from __future__ import annotations

import csv
import io
import re

import pandas as pd

from bench.reports.labels import csv_num, num, signed, slug, split_row
from bench.reports.layout import Cell, Row, Table

DASH = "—"


# ---- shared cell text -------------------------------------------------------------------------------------

def cell_text(cell: Cell | None, row: Row) -> str:
    """Unicode text of a cell; renderers translate the few symbols their format needs."""
    if cell is None:
        return DASH
    if row.source == "reference":
        return num(cell.ref) + (f" (Δ {signed(cell.delta)})" if cell.delta is not None else "")
    text = num(cell.mean) + (f" ± {num(cell.std)}" if cell.std is not None else "")
    return text + (f" (n={cell.n})" if cell.n < row.seeds else "")


def note_text(row: Row) -> str:
    if row.source == "reference":
        return "published"
    if row.alphas:
        return "; ".join(["α=" + "/".join(f"{a:g}" for a in row.alphas)] + ([row.note] if row.note else []))
    if row.candidates > 1:
        return "; ".join([f"best of {row.candidates} hparam configs"] + ([row.note] if row.note else []))
    return row.note


def seeds_text(row: Row) -> str:
    if row.source == "reference":
        return ""
    return str(row.seeds) if row.seeds else DASH


def header(table: Table) -> list[str]:
    return ["Method", "n"] + [c.header for c in table.columns] + ["Notes"]


def body(table: Table, bold) -> list[list[str]]:
    """Row texts; `bold(text)` wraps the best cells in the target format's emphasis."""
    out = []
    for row in table.rows:
        cells = []
        for col in table.columns:
            cell = row.cells.get(col.key)
            text = cell_text(cell, row)
            cells.append(bold(text) if cell is not None and cell.bold else text)
        out.append([row.label, seeds_text(row)] + cells + [note_text(row)])
    return out


# ---- Markdown -----------------------------------------------------------------------------------------------

def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(table: Table) -> str:
    head = header(table)
    lines = ["| " + " | ".join(_md_escape(h) for h in head) + " |",
             "|" + "|".join([":---", "---:"] + ["---:"] * len(table.columns) + [":---"]) + "|"]
    for cells in body(table, lambda t: f"**{t}**"):
        lines.append("| " + " | ".join(_md_escape(c) for c in cells) + " |")
    return "\n".join(lines)


def to_markdown(tables: list[Table], intro: list[str], plots: dict) -> str:
    """The whole report. `plots` maps (model, task) to [(alt text, relative path)]."""
    out = [f"# {intro[0]}", ""]
    for line in intro[1:]:
        out += [line, ""]
    model = None
    for table in tables:
        if table.model != model:
            model = table.model
            out += [f"## Model: {model}", ""]
        out += [f"### {table.task}", "", f"Table: {table.caption}", "", markdown_table(table), ""]
        for alt, path in plots.get((table.model, table.task), []):
            out += [f"![{alt}]({path})", ""]
    return "\n".join(out).rstrip("\n") + "\n"


# ---- LaTeX --------------------------------------------------------------------------------------------------

_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_TEX_UNICODE = {"±": r"$\pm$", "×": r"$\times$", "α": r"$\alpha$", "Δ": r"$\Delta$", DASH: "--", "−": "-"}


def tex(text: str) -> str:
    text = "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)
    for k, v in _TEX_UNICODE.items():
        text = text.replace(k, v)
    return text


def latex_table(table: Table) -> str:
    spec = "lr" + "r" * len(table.columns) + "l"
    label = "tab:" + re.sub(r"[^a-z0-9]+", "-", f"{table.model}-{table.task}".lower()).strip("-")
    lines = [r"\begin{table}[htbp]", r"\centering", r"\small", rf"\caption{{{tex(table.caption)}}}",
             rf"\label{{{label}}}", r"\resizebox{\columnwidth}{!}{%", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(tex(h) for h in header(table)) + r" \\", r"\midrule"]
    previous = None
    for row, cells in zip(table.rows, body(table, lambda t: f"\x00{t}\x01")):
        group = (row.source, row.source == "ours" and split_row(row.id)[1])
        if previous is not None and group != previous:
            lines.append(r"\midrule")  # plain methods | + WiSE-FT | published numbers
        previous = group
        texts = [tex(c).replace("\x00", r"\textbf{").replace("\x01", "}") for c in cells]
        lines.append(" & ".join(texts) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]  # scaled to the text column
    return "\n".join(lines)


def to_latex(tables: list[Table], intro: list[str]) -> str:
    head = [f"% {tex(line)}" for line in intro] + [r"% Needs \usepackage{booktabs} and \usepackage{graphicx} (for \resizebox) in the preamble.", ""]
    return "\n".join(head) + "\n\n".join(latex_table(t) for t in tables) + "\n"


# ---- CSV ----------------------------------------------------------------------------------------------------

def _csv(header_row: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header_row)
    writer.writerows(rows)
    return buf.getvalue()


LONG = ["model", "task", "row", "method", "source", "column", "role", "set", "metric", "n", "mean", "std",
        "reference", "delta", "selection"]


def to_csv_long(tables: list[Table], selection: str) -> str:
    """One line per table cell (present or not), values in percent."""
    rows = []
    for t in tables:
        for row in t.rows:
            for col in t.columns:
                c = row.cells.get(col.key)
                rows.append([t.model, t.task, row.id, row.label, row.source, col.header, col.role, col.set, col.metric,
                             c.n if c and row.source == "ours" else "", csv_num(c.mean if c else None),
                             csv_num(c.std if c else None), csv_num(c.ref if c else None),
                             csv_num(c.delta if c else None), selection])
    return _csv(LONG, rows)


def to_csv_wide(tables: list[Table], selection: str) -> str:
    """One line per (model, task, row); one mean and one std column per metric key (blank elsewhere)."""
    keys: list[str] = []
    for t in tables:
        keys += [c.key for c in t.columns if c.key not in keys]
    keys.sort(key=lambda k: ({"id": 0, "ood": 1}.get(k.split("/")[0], 2), k == "ood/avg", k))
    head = ["model", "task", "row", "method", "source", "n"] + [f"{k} {s}" for k in keys for s in ("mean", "std")]
    rows = []
    for t in tables:
        for row in t.rows:
            values = []
            for k in keys:
                c = row.cells.get(k)
                mean = None if c is None else (c.ref if row.source == "reference" else c.mean)
                values += [csv_num(mean), csv_num(c.std if c else None)]
            rows.append([t.model, t.task, row.id, row.label, row.source, row.seeds if row.source == "ours" else ""] + values)
    return _csv(head + ["selection"], [r + [selection] for r in rows])


def to_csv_selection(picks: pd.DataFrame, selection: str) -> str:
    """Which run, epoch and alpha each seed's cell came from (find a run in MLflow by its bench.run_key)."""
    head = ["model", "task", "row", "seed", "run_key", "hparams", "base_run_key", "epoch", "alpha", "score", "candidates",
            "selection"]
    rows = []
    for p in picks.sort_values(["model", "task", "row", "seed"]).itertuples(index=False):
        alpha = "" if p.alpha is None or pd.isna(p.alpha) else f"{p.alpha:g}"
        base = p.base_run_key if isinstance(p.base_run_key, str) else ""
        rows.append([p.model, p.task, p.row, p.seed, p.run_key, p.hparams, base, p.epoch, alpha, csv_num(100 * p.score),
                     p.candidates, selection])
    return _csv(head, rows)


def to_csv_curves(curves: pd.DataFrame, selection: str) -> str:
    """WiSE-FT curves over alpha, mean over seeds, percent."""
    head = ["model", "task", "row", "alpha", "key", "n", "mean", "std", "selection"]
    rows = [[c.model, c.task, c.row, f"{c.alpha:g}", c.key, c.n, csv_num(c.mean),
             csv_num(None if c.std is None or pd.isna(c.std) else c.std), selection]
            for c in curves.sort_values(["model", "task", "row", "alpha", "key"]).itertuples(index=False)]
    return _csv(head, rows)


def file_slug(model: str, task: str) -> str:
    return f"{slug(model)}__{slug(task)}"
