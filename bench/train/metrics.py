"""Metrics on (logits, labels). Names appear in metric keys: `id/<set>/<metric>`."""
from __future__ import annotations

import torch

from bench.errors import unknown_name


def top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(dim=-1) == labels).float().mean().item()


def macro_f1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Macro-F1 over the classes present in `labels`, as WILDS' F1-macro_all (sklearn labels=unique(y))."""
    from sklearn.metrics import f1_score

    y = labels.cpu().numpy()
    pred = logits.argmax(dim=-1).cpu().numpy()
    present = sorted(set(y.tolist()))
    return float(f1_score(y, pred, labels=present, average="macro", zero_division=0))


METRICS = {"top1": top1, "macro_f1": macro_f1}
# WILDS metric names that equal ours on (logits, labels) alone, so validation scores (e.g. LP's choice of
# C) can be computed without metadata; group metrics such as acc_worst_region need the dataset's eval.
ALIASES = {"F1-macro_all": "macro_f1", "acc_avg": "top1"}


def get_metric(name: str):
    name = ALIASES.get(name, name)
    if name not in METRICS:
        raise unknown_name("metric", name, list(METRICS))
    return METRICS[name]
