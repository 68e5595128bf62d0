"""Multinomial logistic regression by full-batch L-BFGS in torch (runs on GPU for ImageNet-size probes).

Minimises scikit-learn's objective, C * sum_i CE_i + ||W||^2 / 2 with an unpenalised bias, rescaled by
1 / (C n) for conditioning; the minimiser is the same, so results agree with sklearn's lbfgs solver.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F


def fit_logreg(X: torch.Tensor, y: torch.Tensor, n_classes: int, C: float,
               init: tuple[torch.Tensor, torch.Tensor] | None = None,
               max_iter: int = 500, tol: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    n, d = X.shape
    if init is None:
        W = torch.zeros(n_classes, d, dtype=X.dtype, device=X.device)
        b = torch.zeros(n_classes, dtype=X.dtype, device=X.device)
    else:
        W, b = (t.detach().clone().to(X) for t in init)
    W.requires_grad_(True)
    b.requires_grad_(True)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")
    reg = 1.0 / (2.0 * C * n)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(X @ W.T + b, y) + reg * (W * W).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return W.detach(), b.detach()


def select_logreg(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
                  n_classes: int, grid: Sequence[float], score: Callable[[torch.Tensor, torch.Tensor], float],
                  log: Callable[[str], None] = lambda s: None):
    """Fit over an ascending C grid with warm starts; keep the C whose val score is best (first on ties)."""
    best = None
    init = None
    results = []
    for C in sorted(grid):
        W, b = fit_logreg(train[0], train[1], n_classes, C, init=init)
        init = (W, b)
        s = score(val[0] @ W.T + b, val[1])
        results.append((C, s))
        log(f"  LP C={C:.3g}: val {s:.4f}")
        if best is None or s > best[0]:
            best = (s, C, W, b)
    return {"score": best[0], "C": best[1], "weight": best[2], "bias": best[3], "grid": results}
