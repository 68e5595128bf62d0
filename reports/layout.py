"""Selected and aggregated results -> format-neutral tables laid out like the paper's: one per (model, task);
rows Zeroshot, LP, FT, L2-SP, LP-FT, FLYP, FLYP-CE, then each finetuning method + WiSE-FT; columns every
ID set, every OOD set (suite order), Avg OOD. Renderers (tables.py, html.py) only format these.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from bench.reports.labels import WISE, metric_name, num, row_label, row_order
from bench.reports.reference import RefEntry, match_entry


@dataclass
class Column:
    key: str        # id/<set>/<metric>, ood/<set>/<metric>, ood/avg
    role: str       # id | ood | avg
    set: str
    metric: str

    @property
    def header(self) -> str:
        if self.role == "avg":
            return f"Avg OOD ({metric_name(self.metric)})"
        if self.role == "er":
            return "Eff. robustness (points)"
        return f"{'ID' if self.role == 'id' else 'OOD'} {self.set} ({metric_name(self.metric)})"


@dataclass
class Cell:
    mean: float | None = None       # percent
    std: float | None = None
    n: int = 0
    bold: bool = False
    ref: float | None = None        # reference rows: the published value ...
    delta: float | None = None      # ... and ours minus it


@dataclass
class Row:
    id: str
    label: str
    source: str                     # ours | reference
    seeds: int = 0
    cells: dict[str, Cell] = field(default_factory=dict)
    alphas: tuple = ()
    candidates: int = 1
    note: str = ""                  # the chosen runs' own notes (lr searched, did not learn)


@dataclass
class Table:
    model: str
    task: str
    val_key: str
    caption: str
    columns: list[Column]
    rows: list[Row]

    @property
    def ours(self) -> list[Row]:
        return [r for r in self.rows if r.source == "ours"]


def make_columns(keys: list[str], order: list[str]) -> list[Column]:
    """ID sets, then OOD sets, in suite order (alphabetical where unknown), then Avg OOD."""
    rank = {name: i for i, name in enumerate(order)}
    cols = []
    for key in keys:
        parts = key.split("/")
        if key == "ood/avg":
            continue
        if len(parts) == 3 and parts[0] in ("id", "ood"):
            cols.append(Column(key, parts[0], parts[1], parts[2]))
    cols.sort(key=lambda c: (c.role != "id", rank.get(c.set, len(rank)), c.set, c.metric))
    if "ood/avg" in keys:
        ood_metrics = sorted({c.metric for c in cols if c.role == "ood"})
        cols.append(Column("ood/avg", "avg", "avg", ood_metrics[0] if len(ood_metrics) == 1 else "mean"))
    return cols


def caption(task: str, model: str, columns: list[Column], val_key: str, rule) -> str:
    metrics = sorted({metric_name(c.metric) for c in columns if c.role != "avg"}) or ["-"]
    return (f"{task}, {model}: {', '.join(metrics)} (×100), mean ± std over seeds; n = seeds. "
            + rule.caption(val_key))


def build_tables(selected, cells: pd.DataFrame, summary: pd.DataFrame, rule, set_order: dict[str, list[str]],
                 task_order: list[str], reference: list[RefEntry] | None = None) -> list[Table]:
    tables = []
    for model in sorted(set(cells["model"])):
        of_model = cells[cells["model"] == model]
        rows_of_model = sorted(set(selected.picks.loc[selected.picks["model"] == model, "row"]), key=row_order)
        tasks = sorted(set(of_model["task"]), key=lambda t: (task_order.index(t) if t in task_order else len(task_order), t))
        for task in tasks:
            here = of_model[of_model["task"] == task]
            columns = make_columns(sorted(set(here["key"])), set_order.get(task, []))
            val_key = selected.val_keys[task]
            rows = [_our_row(rid, here, summary, model, task, columns) for rid in rows_of_model]
            _soup_sizes(rows, selected.picks[(selected.picks["model"] == model) & (selected.picks["task"] == task)])
            table = Table(model, task, val_key, caption(task, model, columns, val_key, rule), columns, rows)
            _add_effective_robustness(table)
            _bold(rows, table.columns)
            rows += _reference_rows(reference or [], task, columns, rows)
            tables.append(table)
    return tables


def _add_effective_robustness(table: Table) -> None:
    """A last column: Avg OOD above the probit-space fit through Zeroshot, LP and FT (robustness.py);
    none when the task has no OOD average or too few baselines."""
    from bench.reports.robustness import effective_robustness

    er = effective_robustness(table)
    if not er:
        return
    table.columns = table.columns + [Column("er", "er", "er", "points")]
    for row in table.ours:
        if row.id in er:
            row.cells["er"] = Cell(mean=er[row.id], n=row.seeds)
    table.caption += (" Eff. robustness: Avg OOD minus the linear fit in probit space through Zeroshot, LP and FT "
                      "at the row's ID score, on the means.")


def _our_row(rid: str, here: pd.DataFrame, summary: pd.DataFrame, model: str, task: str, columns) -> Row:
    row = Row(rid, row_label(rid), "ours")
    info = summary[(summary["model"] == model) & (summary["task"] == task) & (summary["row"] == rid)]
    if not info.empty:
        rec = info.iloc[0]
        row.seeds, row.alphas, row.candidates = int(rec["seeds"]), tuple(rec["alphas"]), int(rec["candidates"])
        row.note = rec.get("note", "") or ""
    mine = here[here["row"] == rid].set_index("key")
    for col in columns:
        if col.key in mine.index:
            rec = mine.loc[col.key]
            std = rec["std"]
            row.cells[col.key] = Cell(mean=float(rec["mean"]), std=None if pd.isna(std) else float(std), n=int(rec["n"]))
    return row


def _soup_sizes(rows: list[Row], picks: pd.DataFrame) -> None:
    """Greedy soup rows say how many of the K configurations the soup kept: "FT soup (greedy, 2 of 3)" (a range
    when seeds differ); their WiSE-FT rows say the same of the soup they interpolate."""
    import re

    sizes = {}
    for _, pick in picks.iterrows():
        m = re.search(r"soup=greedy, k=(\d+), K=(\d+)", str(pick["hparams"]))
        if m:
            sizes.setdefault(pick["row"], []).append((int(m[1]), int(m[2])))
            sizes.setdefault(pick["run_key"], []).append((int(m[1]), int(m[2])))
    for row in rows:
        found = sizes.get(row.id, [])
        if not found and row.id.endswith(WISE) and "@soup:greedy" in row.id:
            keys = picks.loc[picks["row"] == row.id, "base_run_key"]
            found = [s for k in keys for s in sizes.get(k, [])]
        if found and "(greedy)" in row.label:
            ks, Ks = sorted({k for k, _ in found}), sorted({K for _, K in found})
            k = str(ks[0]) if len(ks) == 1 else f"{ks[0]}-{ks[-1]}"
            row.label = row.label.replace("(greedy)", f"(greedy, {k} of {'/'.join(map(str, Ks))})")


def _bold(rows: list[Row], columns: list[Column]) -> None:
    """Best mean per column, compared as printed (one decimal), so equal-looking values are all bold.
    Every metric here is higher-is-better."""
    for col in columns:
        shown = [(float(num(r.cells[col.key].mean)), r) for r in rows if col.key in r.cells]
        if len(shown) < 2:
            continue
        best = max(v for v, _ in shown)
        for v, r in shown:
            r.cells[col.key].bold = v == best


def _reference_rows(reference: list[RefEntry], task: str, columns, ours: list[Row]) -> list[Row]:
    mine = [e for e in reference if e.task == task]
    by_row: dict[str, Row] = {}
    means = {(r.id, k): c.mean for r in ours for k, c in r.cells.items()}
    for entry in mine:
        key = match_entry(entry, columns)
        row = by_row.setdefault(entry.row, Row(entry.row, f"{row_label(entry.row)} (reference)", "reference"))
        ours_mean = means.get((entry.row, key))
        row.cells[key] = Cell(ref=entry.value, delta=None if ours_mean is None else ours_mean - entry.value)
    return [by_row[r] for r in sorted(by_row, key=row_order)]
