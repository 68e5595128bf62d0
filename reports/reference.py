"""Published numbers to set beside a reproduction: a CSV with columns method, task, dataset, metric, value
(percent, as papers print them). Format and examples: reports/README.md.

The file is checked in full before anything is written; every problem names its line.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError
from bench.reports.labels import WISE, row_id, row_label

REQUIRED = ("method", "task", "dataset", "metric", "value")
AVG_NAMES = {"avg", "avg ood", "avg_ood", "ood_avg", "ood/avg", "average"}


@dataclass(frozen=True)
class RefEntry:
    line: int
    row: str        # row id: "flyp", "ft+wiseft"
    task: str
    dataset: str    # an evaluation set name, or "avg" for the OOD average
    metric: str
    value: float    # percent

    @property
    def is_avg(self) -> bool:
        return self.dataset.lower() in AVG_NAMES


def _row_names() -> dict[str, str]:
    """Every accepted spelling (lower case) -> row id: registry names, labels, and both with WiSE-FT."""
    from bench.methods import METHODS

    names = {}
    for method in METHODS.names():
        if METHODS.meta(method).get("derived"):
            continue
        for wise in (False, True):
            rid = row_id(method, wise)
            names[rid] = rid
            names[row_label(rid).lower()] = rid
            names[row_label(rid).lower().replace(" ", "")] = rid
            if wise:
                names[f"{method} + wise-ft"] = rid
                names[f"{method}+wise-ft"] = rid
    return names


def load_reference(path) -> list[RefEntry]:
    path = Path(path)
    where = f"Reference file {path}"
    if not path.is_file():
        raise BenchError(f"{where} does not exist. Expected a CSV with columns {', '.join(REQUIRED)}.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{where} cannot be read as UTF-8 text: {exc}") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise BenchError(f"{where}: missing column(s) {', '.join(missing)}; the header must name "
                         f"{', '.join(REQUIRED)} (found: {', '.join(header) or 'nothing'}).")
    reader.fieldnames = header
    names, entries, seen = _row_names(), [], {}
    for line, raw in enumerate(reader, start=2):
        rec = {k: (raw.get(k) or "").strip() for k in REQUIRED}
        if not any(rec.values()):
            continue
        if None in raw:
            raise BenchError(f"{where}, line {line}: more fields than the header has columns.")
        empty = [k for k in REQUIRED if not rec[k]]
        if empty:
            raise BenchError(f"{where}, line {line}: empty {', '.join(empty)}.")
        try:
            value = float(rec["value"].rstrip("%"))
        except ValueError:
            raise BenchError(f"{where}, line {line}: value '{rec['value']}' is not a number.") from None
        if not math.isfinite(value):
            raise BenchError(f"{where}, line {line}: value '{rec['value']}' is not finite.")
        method = rec["method"].lower()
        if method not in names:
            import difflib

            close = difflib.get_close_matches(method, sorted(names), n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            valid = sorted({v for v in names.values()}, key=lambda r: (r.endswith(WISE), r))
            raise BenchError(f"{where}, line {line}: unknown method '{rec['method']}'.{hint} Use a method name "
                             f"or '<method>+wiseft': {', '.join(valid)}.")
        entry = RefEntry(line, names[method], rec["task"], rec["dataset"], rec["metric"], value)
        ident = (entry.row, entry.task, "avg" if entry.is_avg else entry.dataset, entry.metric)
        if ident in seen:
            raise BenchError(f"{where}, line {line}: repeats line {seen[ident]} (same method, task, dataset, metric).")
        seen[ident] = line
        entries.append(entry)
    if not entries:
        raise BenchError(f"{where} has a header but no rows.")
    return entries


def match_entry(entry: RefEntry, columns) -> str:
    """The column key a reference entry belongs to in its task's table, or a clear error."""
    if entry.is_avg:
        return "ood/avg"
    sets = [c for c in columns if c.set == entry.dataset and c.role in ("id", "ood")]
    if not sets:
        names = ", ".join([c.set for c in columns if c.role in ("id", "ood")] + ["avg"])
        raise BenchError(f"Reference line {entry.line}: task '{entry.task}' has no evaluation set '{entry.dataset}' "
                         f"(its sets: {names}).")
    for c in sets:
        if c.metric == entry.metric:
            return c.key
    raise BenchError(f"Reference line {entry.line}: set '{entry.dataset}' of task '{entry.task}' is measured in "
                     f"{', '.join(c.metric for c in sets)}, not '{entry.metric}'.")
