"""Multinomial logistic regression by full-batch L-BFGS in torch (runs on GPU for ImageNet-size probes).

Minimises scikit-learn's objective, C * sum_i CE_i + ||W||^2 / 2 with an unpenalised bias, rescaled by
1 / (C n) for conditioning; the minimiser is the same, so results agree with sklearn's lbfgs solver.
scikit-learn (>= 1.2) scales its objective the same way, so `tol` means what sklearn's does: stop when
the largest gradient entry is below it. The default is tighter than sklearn's 1e-4: at 1e-4 the large-C
fits stop early enough to move LP's toy accuracy by 0.3-0.5 points, and reported numbers should not depend
on a stopping rule. `bench perf` compares with sklearn at sklearn's own tolerance (SKLEARN_TOL).

Speed (see bench/perf/probes.py): loss and gradient are computed in closed form (two matmuls, no autograd
graph, so features made under torch.inference_mode are fine), the C grid is walked upwards with warm starts,
and the caller's dtype is kept: float32 halves the CPU matmul cost and is what a GPU runs fast.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

DEFAULT_TOL = 1e-6
SKLEARN_TOL = 1e-4


def _loss_and_grads(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor, reg: float):
    """Mean cross-entropy + reg * ||W||^2 and its gradients, with one logits matmul and one gradient matmul."""
    n = X.shape[0]
    rows = torch.arange(n, device=X.device)
    logits = torch.addmm(b, X, W.T)
    lse = torch.logsumexp(logits, dim=1)
    loss = (lse.sum() - logits[rows, y].sum()) / n + reg * W.square().sum()
    probs = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
    probs[rows, y] -= 1.0
    probs.div_(n)
    return loss, probs.T @ X + (2.0 * reg) * W, probs.sum(0)


def fit_logreg(X: torch.Tensor, y: torch.Tensor, n_classes: int, C: float,
               init: tuple[torch.Tensor, torch.Tensor] | None = None,
               max_iter: int = 500, tol: float = DEFAULT_TOL) -> tuple[torch.Tensor, torch.Tensor]:
    n, d = X.shape
    X = X.detach()
    if init is None:
        W = torch.zeros(n_classes, d, dtype=X.dtype, device=X.device)
        b = torch.zeros(n_classes, dtype=X.dtype, device=X.device)
    else:
        W, b = (t.detach().clone().to(X) for t in init)
    y = y.to(X.device)
    reg = 1.0 / (2.0 * C * n)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        loss, W.grad, b.grad = _loss_and_grads(X, y, W, b, reg)
        return loss

    with torch.no_grad():
        opt.step(closure)
    W.grad = b.grad = None
    return W, b


def select_logreg(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
                  n_classes: int, grid: Sequence[float], score: Callable[[torch.Tensor, torch.Tensor], float],
                  log: Callable[[str], None] = lambda s: None, tol: float = DEFAULT_TOL):
    """Fit over an ascending C grid with warm starts; keep the C whose val score is best (first on ties)."""
    best = None
    init = None
    results = []
    for C in sorted(grid):
        W, b = fit_logreg(train[0], train[1], n_classes, C, init=init, tol=tol)
        init = (W, b)
        s = score(val[0] @ W.T + b, val[1])
        results.append((C, s))
        log(f"  LP C={C:.3g}: val {s:.4f}")
        if best is None or s > best[0]:
            best = (s, C, W, b)
    return {"score": best[0], "C": best[1], "weight": best[2], "bias": best[3], "grid": results}
