"""The paper's own table shapes, built from the per-task tables (layout.py) and the per-seed points.

Three shapes, recognised from the tasks themselves (so a custom suite of the same shape gets them too):
- shift (Table 1): per task its ID column and either its one OOD set or the Avg over its shifts, then the
  average over every OOD set of every task (the paper's "Avg over 7 OOD sets"); a second table per task with
  several shifts gives the per-shift detail (IN / V2 / R / Sketch / A / ObjectNet / Avg).
- transfer: no task has OOD sets; each dataset is a column, then their average.
- few-shot: every task is named <dataset>-<k>shot; each dataset gets k = 4/16/32 columns, each cell the mean
  over draws ± the half-width of a 95% t-interval.
Averages over sets are taken per seed, then over seeds (a seed missing a set does not enter the average).
"""
from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field

import pandas as pd

from bench.reports.labels import metric_name, row_order
from bench.reports.layout import Cell, Row, Table, _bold

LAYOUTS = ("paper", "tasks")
PAPER_SUITES = ("distribution-shift", "transfer", "few-shot", "toy")
SHOT = re.compile(r"^(?P<data>.+)-(?P<k>\d+)shot$")

# Readers' short names (the paper's headers); unknown names are shown as logged.
SHORT = {"imagenet": "IN", "imagenetv2": "V2", "imagenet-r": "R", "imagenet-a": "A", "imagenet-sketch": "Sketch",
         "objectnet": "ObjectNet", "v2": "V2", "sketch": "Sketch", "rendition": "R", "adversarial": "A",
         "id_test": "ID", "ood_test": "OOD"}
TASK_SHORT = {"imagenet": "ImageNet", "iwildcam": "iWildCam", "fmow": "FMoW", "caltech101": "Caltech101",
              "stanfordcars": "Cars", "flowers102": "Flowers", "pcam": "PCam", "sst2": "SST2", "eurosat": "EuroSAT",
              "toy-shift": "Toy-shift", "toy-cameras": "Toy-cameras"}
def t975(df: int) -> float:
    """The two-sided 95% Student t quantile (the 97.5th percentile) at `df` degrees of freedom, exact."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def default_layout(name: str | None) -> str:
    return "paper" if name in PAPER_SUITES else "tasks"


@dataclass
class PaperColumn:
    key: str        # unique within the table: <task>|<per-task key> or an average's own key
    group: str      # spanning header ("ImageNet"); "" for none
    label: str      # short header ("ID", "Avg", "V2", "k=4")
    metric: str
    parts: list = field(default_factory=list)   # (task, per-task key) pairs averaged per seed
    alt: tuple | None = None                    # a per-task key holding the same average (a published "avg")

    @property
    def header(self) -> str:
        return f"{self.group} {self.label}".strip()


@dataclass
class PaperTable:
    model: str
    name: str
    caption: str
    columns: list[PaperColumn]
    rows: list[Row]
    spread: str = "std"     # what "±" means: std over seeds, or ci95 over few-shot draws

    @property
    def ours(self) -> list[Row]:
        return [r for r in self.rows if r.source == "ours"]


def kind_of(tables: list[Table]) -> str:
    if tables and all(SHOT.match(t.task) for t in tables):
        return "few-shot"
    return "shift" if any(c.role == "ood" for t in tables for c in t.columns) else "transfer"


def build_paper_tables(tables: list[Table], points: pd.DataFrame, rule_caption: str) -> list[PaperTable]:
    out = []
    for model in dict.fromkeys(t.model for t in tables):
        mine = [t for t in tables if t.model == model]
        kind = kind_of(mine)
        if kind == "few-shot":
            out.append(_few_shot(model, mine, points, rule_caption))
        elif kind == "transfer":
            out.append(_transfer(model, mine, points, rule_caption))
        else:
            out += _shift(model, mine, points, rule_caption)
    return out


# ---- shapes -------------------------------------------------------------------------------------------------

def _task_short(task: str) -> str:
    return TASK_SHORT.get(task, task)


def _metrics(columns: list[PaperColumn]) -> str:
    return ", ".join(sorted({metric_name(c.metric) for c in columns if c.metric != "mean"}))


def _shift(model, tables, points, rule_caption) -> list[PaperTable]:
    cols, every_ood = [], []
    for t in tables:
        ids = [c for c in t.columns if c.role == "id"]
        oods = [c for c in t.columns if c.role == "ood"]
        group = _task_short(t.task)
        for c in ids:
            label = "ID" if len(ids) == 1 else SHORT.get(c.set, c.set)
            cols.append(PaperColumn(f"{t.task}|{c.key}", group, label, c.metric, [(t.task, c.key)]))
        if len(oods) == 1:
            cols.append(PaperColumn(f"{t.task}|{oods[0].key}", group, "OOD", oods[0].metric, [(t.task, oods[0].key)]))
        elif oods:
            cols.append(PaperColumn(f"{t.task}|ood/avg", group, f"Avg ({len(oods)})", _one_metric(oods),
                                    [(t.task, c.key) for c in oods], (t.task, "ood/avg")))
        every_ood += [(t.task, c.key, c.metric) for c in oods]
    if every_ood:
        cols.append(PaperColumn("all/ood/avg", "", f"Avg OOD ({len(every_ood)})", "mean",
                                [(task, key) for task, key, _ in every_ood]))
    summary = PaperTable(model, "summary", "", cols, _rows(tables, cols, points))
    summary.caption = (f"{model}: {_metrics(cols)} (×100), mean ± std over seeds. ID = in-distribution test; "
                       f"Avg (k) = mean over a task's k OOD sets; Avg OOD ({len(every_ood)}) = mean over all "
                       f"{len(every_ood)} OOD sets (metrics as logged per set). {rule_caption}")
    out = [summary]
    for t in tables:
        oods = [c for c in t.columns if c.role == "ood"]
        if len(oods) < 2:
            continue
        ids = [c for c in t.columns if c.role == "id"]
        detail = [PaperColumn(f"{t.task}|{c.key}", "", SHORT.get(c.set, c.set), c.metric, [(t.task, c.key)])
                  for c in ids + oods]
        detail.append(PaperColumn(f"{t.task}|ood/avg", "", "Avg", _one_metric(oods), [(t.task, c.key) for c in oods],
                                  (t.task, "ood/avg")))
        sets = ", ".join(f"{SHORT.get(c.set, c.set)} = {c.set}" for c in ids + oods)
        table = PaperTable(model, f"{t.task} per shift", "", detail, _rows([t], detail, points))
        table.caption = (f"{_task_short(t.task)}, {model}, per shift: {_metrics(detail)} (×100), mean ± std over "
                         f"seeds ({sets}; Avg = mean over the {len(oods)} OOD sets). {rule_caption}")
        out.append(table)
    robust = _effective_robustness(model, tables, rule_caption)
    return out + ([robust] if robust else [])


def _effective_robustness(model, tables, rule_caption) -> PaperTable | None:
    """One column per task with OOD sets: each method's Avg OOD above the probit-space line through the
    zero-shot model and the LP and FT baselines (robustness.py)."""
    from bench.reports.robustness import BASELINES, effective_robustness

    cols, per_task = [], {}
    for t in tables:
        er = effective_robustness(t)
        if er:
            per_task[t.task] = er
            cols.append(PaperColumn(f"{t.task}|er", "", _task_short(t.task), "er", [(t.task, "er")]))
    if not cols:
        return None
    rows = []
    for rid in sorted({r for er in per_task.values() for r in er}, key=row_order):
        label = next(r.label for t in tables for r in t.ours if r.id == rid)
        row = Row(rid, label, "ours")
        row.cells = {f"{task}|er": Cell(mean=er[rid], n=1) for task, er in per_task.items() if rid in er}
        rows.append(row)
    _bold(rows, cols)
    base = ", ".join(dict.fromkeys(next(r.label for t in tables for r in t.ours if r.id == b)
                                   for b in BASELINES if any(r.id == b for t in tables for r in t.ours)))
    table = PaperTable(model, "effective robustness", "", cols, rows)
    table.caption = (f"{model}: effective robustness (points ×100): Avg OOD minus the OOD that a linear fit in "
                     f"probit space through {base} predicts at the method's ID score (Taori et al. 2020), "
                     f"per task, on the means over seeds. {rule_caption}")
    return table


def _transfer(model, tables, points, rule_caption) -> PaperTable:
    cols = [PaperColumn(f"{t.task}|{c.key}", "", _task_short(t.task), c.metric, [(t.task, c.key)])
            for t in tables for c in t.columns if c.role == "id"]
    if len(cols) > 1:
        cols.append(PaperColumn("all/id/avg", "", "Avg", "mean", [p for c in cols for p in c.parts]))
    table = PaperTable(model, "transfer", "", cols, _rows(tables, cols, points))
    table.caption = (f"{model}, transfer: test {_metrics(cols)} (×100) per dataset, mean ± std over seeds; "
                     f"Avg = mean over the datasets. {rule_caption}")
    return table


def _few_shot(model, tables, points, rule_caption) -> PaperTable:
    by_data: dict[str, list[tuple[int, Table]]] = {}
    for t in tables:
        m = SHOT.match(t.task)
        by_data.setdefault(m["data"], []).append((int(m["k"]), t))
    cols = []
    for data, items in by_data.items():
        for k, t in sorted(items, key=lambda kt: kt[0]):
            c = next((c for c in t.columns if c.role == "id"), None)
            if c is None:
                continue
            cols.append(PaperColumn(f"{t.task}|{c.key}", _task_short(data), f"k={k}", c.metric, [(t.task, c.key)]))
    table = PaperTable(model, "few-shot", "", cols, _rows(tables, cols, points, ci=True), spread="ci95")
    table.caption = (f"{model}, few-shot: test {_metrics(cols)} (×100) with k images per class; mean over draws "
                     f"± half-width of a 95% t-interval (draws = seeds, each its own k-shot sample). {rule_caption}")
    return table


def _one_metric(cols) -> str:
    metrics = {c.metric for c in cols}
    return metrics.pop() if len(metrics) == 1 else "mean"


# ---- cells --------------------------------------------------------------------------------------------------

def _rows(tables: list[Table], cols: list[PaperColumn], points: pd.DataFrame, ci: bool = False) -> list[Row]:
    ours = sorted({r.id for t in tables for r in t.ours}, key=row_order)
    rows = []
    for rid in ours:
        row = Row(rid, next(r.label for t in tables for r in t.ours if r.id == rid), "ours")
        of_row = points[(points["row"] == rid)]
        for col in cols:
            cell = _cell(of_row, col)
            if cell is not None:
                if ci and cell.std is not None:
                    cell.std = t975(cell.n - 1) * cell.std / math.sqrt(cell.n)
                row.cells[col.key] = cell
        row.seeds = max((c.n for c in row.cells.values()), default=0)
        alphas = [a for t in tables for r in t.ours if r.id == rid for a in r.alphas]
        row.alphas = tuple(sorted(set(alphas)))
        rows.append(row)
    _bold(rows, cols)
    return rows + _reference(tables, cols, rows)


def _cell(points: pd.DataFrame, col: PaperColumn) -> Cell | None:
    """Per seed: the mean over the column's (task, key) parts, only for seeds that have all of them."""
    per_seed: dict[int, list[float]] = {}
    for task, key in col.parts:
        here = points[(points["task"] == task) & (points["key"] == key)]
        for seed, value in zip(here["seed"], here["value"]):
            per_seed.setdefault(int(seed), []).append(float(value))
    values = [100.0 * statistics.fmean(v) for s, v in sorted(per_seed.items()) if len(v) == len(col.parts)]
    if not values:
        return None
    return Cell(mean=statistics.fmean(values), std=statistics.stdev(values) if len(values) > 1 else None, n=len(values))


def _reference(tables: list[Table], cols: list[PaperColumn], ours: list[Row]) -> list[Row]:
    """Published numbers beside ours; an average column gets one only when every part is published."""
    refs: dict[str, dict[tuple, float]] = {}
    labels: dict[str, str] = {}
    for t in tables:
        for r in t.rows:
            if r.source == "reference":
                labels[r.id] = r.label
                for key, c in r.cells.items():
                    refs.setdefault(r.id, {})[(t.task, key)] = c.ref
    means = {(r.id, k): c.mean for r in ours for k, c in r.cells.items()}
    rows = []
    for rid in sorted(refs, key=row_order):
        row = Row(rid, labels[rid], "reference")
        for col in cols:
            values = [refs[rid].get(p) for p in col.parts]
            if not (values and all(v is not None for v in values)):
                values = [refs[rid][col.alt]] if col.alt in refs[rid] else []
            if values:
                ref = statistics.fmean(values)
                mine = means.get((rid, col.key))
                row.cells[col.key] = Cell(ref=ref, delta=None if mine is None else mine - ref)
        if row.cells:
            rows.append(row)
    return rows
