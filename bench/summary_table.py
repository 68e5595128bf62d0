"""The ID/OOD table `bench run` prints at the end, from the summaries of the jobs it ran.

WiSE-FT rows pick alpha per seed on ID validation (never on OOD), and show the chosen alpha.
"""
from __future__ import annotations

import statistics
from collections import defaultdict


def _label(method: str) -> str:
    from bench.methods import METHODS

    return METHODS.meta(method).get("label", method) if method in METHODS else method


def _order(method: str) -> int:
    from bench.methods import METHODS

    names = METHODS.names()
    return names.index(method) if method in names else len(names)


def rows_for_task(results: list[tuple], task: str) -> tuple[list[str], list[tuple[str, dict, str]]]:
    """Columns (metric keys) and rows (label, {key: [values over seeds]}, note) for one task."""
    columns: list[str] = []
    by_method: dict[str, dict[int, dict]] = defaultdict(dict)
    wise: dict[str, dict[int, list[tuple[float, dict]]]] = defaultdict(lambda: defaultdict(list))
    val_key = None
    for job, summary in results:
        if job.task != task:
            continue
        for k in summary:
            if k.startswith("sel/val/"):
                val_key = k
            if k.startswith(("sel/id/", "sel/ood/")) and k not in columns:
                columns.append(k)
        if job.method == "wiseft":
            wise[job.extra["base_method"]][job.seed].append((job.extra["alpha"], summary))
        else:
            by_method[job.method][job.seed] = summary
    columns.sort(key=lambda k: (k.startswith("sel/ood/"), k == "sel/ood/avg"))
    rows = []
    for method, seeds in sorted(by_method.items(), key=lambda kv: _order(kv[0])):
        rows.append((_label(method), _collect(list(seeds.values()), columns), ""))
    for base, seeds in sorted(wise.items(), key=lambda kv: _order(kv[0])):
        chosen = [max(points, key=lambda p: (p[1][val_key], -p[0])) for points in seeds.values()]
        alphas = ",".join(f"{a:.1f}" for a, _ in chosen)
        rows.append((f"{_label(base)} + WiSE-FT", _collect([s for _, s in chosen], columns), f"alpha={alphas}"))
    return columns, rows


def _collect(summaries: list[dict], columns: list[str]) -> dict:
    return {c: [s[c] for s in summaries if c in s] for c in columns}


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    mean = 100 * statistics.fmean(values)
    if len(values) > 1:
        return f"{mean:.1f} ± {100 * statistics.stdev(values):.1f}"
    return f"{mean:.1f}"


def _header(key: str) -> str:
    parts = key.split("/")[1:]  # sel/id/<set>/<metric> -> id <set> (<metric>)
    if parts == ["ood", "avg"]:
        return "Avg OOD"
    role, name, metric = parts
    return f"{'ID' if role == 'id' else 'OOD'} {name} ({metric})"


def format_tables(results: list[tuple], tasks: list[str]) -> str:
    out = []
    for task in tasks:
        columns, rows = rows_for_task(results, task)
        if not rows:
            continue
        seeds = max(len(v) for _, cells, _ in rows for v in cells.values()) if columns else 0
        header = ["Method"] + [_header(c) for c in columns] + ["Note"]
        lines = [f"### {task} (values x100, mean over {seeds} seed{'s' if seeds != 1 else ''}; selection on ID validation)",
                 "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for label, cells, note in rows:
            lines.append("| " + " | ".join([label] + [_cell(cells[c]) for c in columns] + [note]) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)
