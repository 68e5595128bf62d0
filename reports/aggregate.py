"""Seeds -> one cell: mean and sample standard deviation (n - 1), in percent, with the number of seeds.

Values are summed in seed order with Python's `statistics` (not a groupby reduction whose order could
change between pandas versions), so the last printed digit is reproducible.
"""
from __future__ import annotations

import statistics

import pandas as pd

CELL_COLUMNS = ["model", "task", "row", "key", "n", "mean", "std"]


def _stats(values: list[float]) -> tuple[int, float, float | None]:
    scaled = [100.0 * v for v in values]
    return len(scaled), statistics.fmean(scaled), (statistics.stdev(scaled) if len(scaled) > 1 else None)


def aggregate(points: pd.DataFrame, by: tuple[str, ...] = ("model", "task", "row", "key")) -> pd.DataFrame:
    """One line per group of `by`: n, mean, std (None for a single seed) over the seeds present."""
    rows = []
    for group, frame in points.groupby(list(by), sort=True, dropna=False):
        n, mean, std = _stats(frame.sort_values("seed")["value"].tolist())
        rows.append({**dict(zip(by, group)), "n": n, "mean": mean, "std": std})
    return pd.DataFrame(rows, columns=[*by, "n", "mean", "std"])


def aggregate_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """WiSE-FT curves averaged over seeds at each alpha."""
    return aggregate(curves, by=("model", "task", "row", "alpha", "key"))


def row_summary(picks: pd.DataFrame) -> pd.DataFrame:
    """Per (model, task, row): seeds, the alpha chosen for each seed, the most hparam configs compared."""
    rows = []
    for (model, task, row), frame in picks.groupby(["model", "task", "row"], sort=True):
        frame = frame.sort_values("seed")
        alphas = [float(a) for a in frame["alpha"] if a is not None and pd.notna(a)]
        rows.append({"model": model, "task": task, "row": row, "seeds": len(frame), "alphas": tuple(alphas),
                     "candidates": int(frame["candidates"].max()),
                     "note": "; ".join(dict.fromkeys(n for n in frame.get("note", []) if isinstance(n, str) and n))})
    return pd.DataFrame(rows, columns=["model", "task", "row", "seeds", "alphas", "candidates", "note"])
