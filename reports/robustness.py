"""Effective robustness (Taori et al. 2020): how far a method's OOD score lies above the line that the
baseline models trace in probit-probit space (OOD against ID).

The line is the least-squares fit, on probit-transformed (ID, Avg OOD) means, through the zero-shot model and
the standard finetuning baselines (LP, FT): the trade-off that finetuning without a robustness method buys.
A method's effective robustness is its Avg OOD minus the line's prediction at its ID score, in points (×100).
Scores are fractions of 1 after /100; values at 0 or 100 are nudged inside so the probit stays finite.
"""
from __future__ import annotations

from statistics import NormalDist

BASELINES = ("zeroshot", "lp", "ft")
_EPS = 1e-4
_NORMAL = NormalDist()


def probit(percent: float) -> float:
    p = min(max(percent / 100.0, _EPS), 1.0 - _EPS)
    return _NORMAL.inv_cdf(p)


def unprobit(z: float) -> float:
    return 100.0 * _NORMAL.cdf(z)


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(slope, intercept) of OOD on ID in probit space; None with fewer than two distinct ID scores."""
    xs = [probit(x) for x, _ in points]
    ys = [probit(y) for _, y in points]
    if len({round(x, 9) for x in xs}) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx


def predict(line: tuple[float, float], id_percent: float) -> float:
    slope, intercept = line
    return unprobit(intercept + slope * probit(id_percent))


def id_and_avg_keys(table) -> tuple[str, str] | None:
    """The task's first ID column and its Avg OOD column (the axes of the OOD-vs-ID plot)."""
    ids = [c.key for c in table.columns if c.role == "id"]
    avg = [c.key for c in table.columns if c.role == "avg"]
    return (ids[0], avg[0]) if ids and avg else None


def baseline_line(table) -> tuple[float, float] | None:
    keys = id_and_avg_keys(table)
    if keys is None:
        return None
    points = [(r.cells[keys[0]].mean, r.cells[keys[1]].mean) for r in table.ours
              if r.id in BASELINES and keys[0] in r.cells and keys[1] in r.cells]
    return fit_line(points)


def effective_robustness(table) -> dict[str, float]:
    """Row id -> effective robustness in points, for every row of ours with both scores; {} without a line."""
    line, keys = baseline_line(table), id_and_avg_keys(table)
    if line is None:
        return {}
    return {r.id: r.cells[keys[1]].mean - predict(line, r.cells[keys[0]].mean) for r in table.ours
            if keys[0] in r.cells and keys[1] in r.cells}
