"""The linear-probe benchmark for `bench perf`: this project's probe against scikit-learn on the same features.

Both sides get the same L2-normalised features (what methods/lp.py fits) and the same C grid. Measured,
interleaved so that a noisy shared machine hits every contender alike, with medians and spread:
- the whole C search: ours (warm starts up the grid, bench/model/logreg.py) vs sklearn fitting each C from
  scratch to convergence, and vs the reference code's recipe (FLYP's linear_lbfgs.py: warm_start=True,
  max_iter=200);
- one fit at the C that sklearn's search chose, both from zeros.
Accuracy is top-1 on the validation features, for the C each search chose.
"""
from __future__ import annotations

import statistics
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from bench.model.logreg import SKLEARN_TOL, fit_logreg, select_logreg

REFERENCE_MAX_ITER = 200  # FLYP's src/models/linear_lbfgs.py


def _top1(logits: torch.Tensor, y: torch.Tensor) -> float:
    return (logits.argmax(1) == y).float().mean().item()


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _sklearn_search(Xtr, ytr, Xva, yva, Cs, warm: bool):
    from sklearn.linear_model import LogisticRegression

    best, model = (-1.0, None), None
    for C in sorted(Cs):
        if warm:  # one estimator, refit per C from the previous solution (the reference code's loop)
            model = model or LogisticRegression(warm_start=True, max_iter=REFERENCE_MAX_ITER)
            model.set_params(C=C)
        else:
            model = LogisticRegression(C=C, max_iter=1000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning is part of the recipe being measured
            model.fit(Xtr, ytr)
        acc = float((model.predict(Xva) == yva).mean())
        if acc > best[0]:
            best = (acc, C)
    return {"val_acc": best[0], "C": best[1]}


def _ours_search(Xtr, ytr, Xva, yva, Cs, n_classes):
    found = select_logreg((Xtr, ytr), (Xva, yva), n_classes, Cs, _top1, tol=SKLEARN_TOL)  # equal tolerance
    return {"val_acc": found["score"], "C": found["C"]}


def _summary(times: list[float]) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "runs": len(times)}


def benchmark_probe(features_train, y_train, features_val, y_val, Cs, repeats: int = 3,
                    dtype: torch.dtype = torch.float32, device="cpu", reference_style: bool = True) -> dict:
    """Timings (median, min, max over `repeats` interleaved runs) and validation accuracies of our probe
    and scikit-learn's LogisticRegression, for the whole C search and for one fit at a common C."""
    Xtr = F.normalize(torch.as_tensor(features_train).to(device, dtype), dim=-1)
    Xva = F.normalize(torch.as_tensor(features_val).to(device, dtype), dim=-1)
    ytr, yva = torch.as_tensor(y_train).long().to(device), torch.as_tensor(y_val).long().to(device)
    n_classes = int(max(ytr.max().item(), yva.max().item())) + 1
    # sklearn sees the very same (normalised) features, in float64 as it computes.
    npXtr, npXva = Xtr.double().cpu().numpy(), Xva.double().cpu().numpy()
    npytr, npyva = ytr.cpu().numpy(), yva.cpu().numpy()
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)

    contenders = {
        "ours": lambda: _ours_search(Xtr, ytr, Xva, yva, Cs, n_classes),
        "sklearn": lambda: _sklearn_search(npXtr, npytr, npXva, npyva, Cs, warm=False),
    }
    if reference_style:
        contenders["sklearn_reference"] = lambda: _sklearn_search(npXtr, npytr, npXva, npyva, Cs, warm=True)
    times = {name: [] for name in contenders}
    results = {}
    for _ in range(repeats):
        for name, run in contenders.items():
            sync()
            seconds, results[name] = _timed(lambda: (run(), sync())[0])
            times[name].append(seconds)

    C = results["sklearn"]["C"]
    single = {"ours": [], "sklearn": []}
    single_acc = {}
    for _ in range(repeats):
        sync()
        s, (W, b) = _timed(lambda: (fit_logreg(Xtr, ytr, n_classes, C, tol=SKLEARN_TOL), sync())[0])
        single["ours"].append(s)
        single_acc["ours"] = _top1(Xva @ W.T + b, yva)
        s, acc = _timed(lambda: _sklearn_search(npXtr, npytr, npXva, npyva, [C], warm=False)["val_acc"])
        single["sklearn"].append(s)
        single_acc["sklearn"] = acc

    report = {
        "n_train": len(ytr), "n_val": len(yva), "dim": Xtr.shape[1], "classes": n_classes, "grid": list(Cs),
        "dtype": str(dtype).replace("torch.", ""), "device": str(device), "threads": torch.get_num_threads(),
        "search": {name: {**_summary(times[name]), **results[name]} for name in contenders},
        "single_fit": {"C": C, **{name: {**_summary(single[name]), "val_acc": single_acc[name]} for name in single}},
    }
    ours = statistics.median(times["ours"])
    report["speedup"] = {f"search_vs_{name}": statistics.median(times[name]) / ours for name in contenders if name != "ours"}
    report["speedup"]["single_fit_vs_sklearn"] = (statistics.median(single["sklearn"])
                                                  / statistics.median(single["ours"]))
    return report


def synthetic_features(n_train: int, n_val: int, dim: int, classes: int, separation: float = 0.15, seed: int = 0):
    """CLIP-like stand-in features (unit-norm, overlapping class clusters) for a probe benchmark without data."""
    g = np.random.default_rng(seed)
    centers = g.normal(0, 1, (classes, dim))
    y = g.integers(0, classes, n_train + n_val)
    X = (centers[y] * separation + g.normal(0, 1, (len(y), dim))).astype(np.float32)
    return torch.from_numpy(X[:n_train]), torch.from_numpy(y[:n_train]), torch.from_numpy(X[n_train:]), torch.from_numpy(y[n_train:])
