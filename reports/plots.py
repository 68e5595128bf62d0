"""Figures per (model, task): OOD against ID on probit axes with one point per method, each WiSE-FT curve
over alpha (the paper's Figure 1 style) and the baseline fit that effective robustness is measured from;
and the per-OOD-set change of every method against FT. Titles name the suite, model and selection rule.

Built on `matplotlib.figure.Figure` (no pyplot: no global state, no GUI backend; PNG goes through Agg).
Functions return the Figure so tests can inspect its series; `render` turns it into PNG or SVG bytes with
no timestamps, so reruns write identical files.
"""
from __future__ import annotations

import io

import pandas as pd

from bench.reports.labels import SOUP, metric_name, row_label, row_order, split_row
from bench.reports.layout import Table


def _colour(method: str):
    import matplotlib

    return matplotlib.colormaps["tab10"](row_order(method)[2] % 10)


def _xy(row, id_key: str):
    a, b = row.cells.get(id_key), row.cells.get("ood/avg")
    return None if a is None or b is None else (a.mean, b.mean)


PROBIT_TICKS = (1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99)


def _probit_axes(ax, xs: list[float], ys: list[float]) -> None:
    """Probit-scaled axes (the effective-robustness convention: linear trends stay straight lines), ticked
    in percent within the data's range."""
    import numpy as np

    from bench.reports.robustness import probit, unprobit

    fwd = np.vectorize(probit, otypes=[float])
    inv = np.vectorize(unprobit, otypes=[float])
    for values, set_scale, set_ticks, set_lim in ((xs, ax.set_xscale, ax.set_xticks, ax.set_xlim),
                                                  (ys, ax.set_yscale, ax.set_yticks, ax.set_ylim)):
        set_scale("function", functions=(fwd, inv))
        lo, hi = unprobit(probit(min(values)) - 0.15), unprobit(probit(max(values)) + 0.15)
        set_lim(lo, hi)
        ticks = [t for t in PROBIT_TICKS if lo <= t <= hi] or [round(lo, 1), round(hi, 1)]
        set_ticks(ticks, [f"{t:g}" for t in ticks])


def id_ood_figure(table: Table, curves: pd.DataFrame, title: str | None = None):
    """Avg OOD against the first ID set on probit axes, with the baseline fit through Zeroshot, LP and FT
    (effective robustness is the height above it); None when the task has no ID or no OOD sets.
    `title` names the suite, model and selection rule (default: task and model)."""
    from matplotlib.figure import Figure

    from bench.reports.robustness import BASELINES, baseline_line, predict

    id_cols = [c for c in table.columns if c.role == "id"]
    avg = [c for c in table.columns if c.role == "avg"]
    if not id_cols or not avg:
        return None
    id_col = id_cols[0]
    fig = Figure(figsize=(7.4, 4.8), dpi=100)
    ax = fig.add_subplot()
    xs, ys = [], []
    mine = curves[(curves["model"] == table.model) & (curves["task"] == table.task)] if len(curves) else curves
    groups = sorted(mine.groupby("row"), key=lambda kv: row_order(kv[0])) if len(mine) else []
    for rid, frame in groups:
        pivot = frame.pivot_table(index="alpha", columns="key", values="mean", aggfunc="first").sort_index()
        if id_col.key not in pivot or "ood/avg" not in pivot:
            continue
        alphas = pivot.index.tolist()
        colour = _colour(split_row(rid)[0])
        ax.plot(pivot[id_col.key], pivot["ood/avg"], linestyle="--", marker=".", linewidth=1.2,
                color=colour, label=f"{row_label(rid)} curve (α {alphas[0]:g}–{alphas[-1]:g})")
        for alpha, x, y in zip(alphas, pivot[id_col.key], pivot["ood/avg"]):
            if alpha in (0.5, 1.0) or alpha == alphas[len(alphas) // 2]:  # a few labels, not a crowd
                ax.annotate(f"α={alpha:g}", (x, y), textcoords="offset points", xytext=(4, -9), fontsize=6,
                            color=colour)
        xs += pivot[id_col.key].tolist()
        ys += pivot["ood/avg"].tolist()
    for row in table.ours:
        xy = _xy(row, id_col.key)
        if xy is None:
            continue
        base, wise = split_row(row.id)
        # WiSE-FT points are hollow and larger: one chosen at alpha 1 sits on its base point, which stays visible.
        if wise:
            ax.scatter([xy[0]], [xy[1]], marker="*", s=220, facecolors="none", edgecolors=_colour(base),
                       linewidths=1.4, zorder=4, label=row.label)
        else:  # soups are diamonds in their method's colour
            marker = "s" if base == "zeroshot" else "D" if SOUP in base else "o"
            ax.scatter([xy[0]], [xy[1]], marker=marker, s=50, color=_colour(base), edgecolors="black",
                       linewidths=0.5, zorder=3, label=row.label)
        xs.append(xy[0])
        ys.append(xy[1])
    line = baseline_line(table)
    if line is not None and xs:
        grid = [min(xs) + (max(xs) - min(xs)) * i / 40 for i in range(41)]
        names = ", ".join(row_label(b) for b in BASELINES if any(r.id == b for r in table.ours))
        ax.plot(grid, [predict(line, x) for x in grid], color="0.4", linewidth=1.0,
                label=f"Baseline fit ({names}; probit)")
    if xs and ys:
        _probit_axes(ax, xs, ys)
    ax.set_xlabel(f"ID {id_col.set}, {metric_name(id_col.metric)} (×100, probit scale)")
    ax.set_ylabel(f"Avg OOD, {metric_name(avg[0].metric)} (×100, probit scale)")
    ax.set_title(title or f"{table.task}, {table.model}", fontsize=9)
    ax.grid(alpha=0.3)
    _legend(ax)
    return fig


def delta_figure(table: Table, title: str | None = None):
    """Grouped bars: each method minus FT on every OOD set and the average; None without an FT row."""
    from matplotlib.figure import Figure

    ft = next((r for r in table.ours if r.id == "ft"), None)
    cols = [c for c in table.columns if c.role in ("ood", "avg") and ft is not None and c.key in ft.cells]
    others = [r for r in table.ours if r.id != "ft" and any(c.key in r.cells for c in cols)]
    if ft is None or not cols or not others:
        return None
    fig = Figure(figsize=(max(6.4, 1.1 * len(cols) + 3), 4.2), dpi=100)
    ax = fig.add_subplot()
    width = 0.8 / len(others)
    for i, row in enumerate(others):
        xs = [j - 0.4 + width * (i + 0.5) for j in range(len(cols))]
        ys = [row.cells[c.key].mean - ft.cells[c.key].mean if c.key in row.cells else float("nan") for c in cols]
        base, wise = split_row(row.id)
        ax.bar(xs, ys, width=width, color=_colour(base), hatch="//" if wise else None, edgecolor="black",
               linewidth=0.4, label=row.label)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(cols)), ["Avg OOD" if c.role == "avg" else c.set for c in cols])
    ax.set_ylabel(f"change vs FT, {metric_name(cols[-1].metric)} (points)")
    ax.set_title(title or f"{table.task}, {table.model}: OOD change against FT", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    _legend(ax)
    return fig


def _legend(ax) -> None:
    """Outside the axes, on the right (inside, it would hide points or bars); two columns when long."""
    count = len(ax.get_legend_handles_labels()[1])
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False,
              ncols=2 if count > 12 else 1)


def render(fig, fmt: str) -> bytes:
    import matplotlib

    buf = io.BytesIO()
    meta = {"Date": None} if fmt == "svg" else {"Software": None}
    with matplotlib.rc_context({"svg.hashsalt": "flyp-bench"}):
        fig.savefig(buf, format=fmt, metadata=meta, bbox_inches="tight")
    return buf.getvalue()
