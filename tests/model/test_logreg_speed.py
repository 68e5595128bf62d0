"""The probe's closed-form gradient, inference-mode features, and the probe benchmark's report (no timing asserts:
speed is measured by `bench perf`, not by tests)."""
import pytest
import torch
import torch.nn.functional as F

from bench.model.logreg import _loss_and_grads, fit_logreg, select_logreg
from bench.train.metrics import top1
from bench.perf.probes import benchmark_probe, synthetic_features


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_closed_form_gradient_equals_autograd(dtype):
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(30, 7, generator=g, dtype=dtype), torch.randint(0, 4, (30,), generator=g)
    W = torch.randn(4, 7, generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=dtype, requires_grad=True)
    reg = 0.3
    ref = F.cross_entropy(X @ W.T + b, y) + reg * (W * W).sum()
    ref.backward()
    loss, gW, gb = _loss_and_grads(X, y, W.detach(), b.detach(), reg)
    tol = {"atol": 1e-10, "rtol": 1e-9} if dtype == torch.float64 else {"atol": 1e-5, "rtol": 1e-5}
    torch.testing.assert_close(loss, ref.detach(), **tol)
    torch.testing.assert_close(gW, W.grad, **tol)
    torch.testing.assert_close(gb, b.grad, **tol)


def test_features_from_inference_mode_can_be_probed():
    Xtr, ytr, Xva, yva = synthetic_features(120, 40, 16, 3, separation=2.0)
    with torch.inference_mode():
        Xtr, Xva = F.normalize(Xtr, dim=-1), F.normalize(Xva, dim=-1)
    found = select_logreg((Xtr, ytr), (Xva, yva), 3, [0.1, 1.0, 10.0], top1)
    assert found["score"] > 0.9 and not found["weight"].requires_grad and found["weight"].grad is None


def test_float32_fit_matches_float64_predictions():
    Xtr, ytr, Xva, yva = synthetic_features(300, 100, 32, 5, separation=0.5)
    Xtr, Xva = F.normalize(Xtr, dim=-1), F.normalize(Xva, dim=-1)
    W32, b32 = fit_logreg(Xtr, ytr, 5, 3.0)
    W64, b64 = fit_logreg(Xtr.double(), ytr, 5, 3.0, tol=1e-8)
    agree = ((Xva @ W32.T + b32).argmax(1) == (Xva.double() @ W64.T + b64).argmax(1)).float().mean()
    assert agree >= 0.98


def test_benchmark_reports_ours_and_sklearn_on_the_same_search():
    r = benchmark_probe(*synthetic_features(200, 80, 16, 4, separation=1.0), [0.1, 1.0, 10.0], repeats=2)
    assert set(r["search"]) == {"ours", "sklearn", "sklearn_reference"}
    for entry in r["search"].values():
        assert entry["runs"] == 2 and entry["min_s"] <= entry["median_s"] <= entry["max_s"]
        assert entry["C"] in (0.1, 1.0, 10.0) and 0.0 <= entry["val_acc"] <= 1.0
    # Same objective, same features: the searches agree on accuracy up to a sample or two.
    assert abs(r["search"]["ours"]["val_acc"] - r["search"]["sklearn"]["val_acc"]) <= 2 / 80
    assert r["single_fit"]["C"] == r["search"]["sklearn"]["C"]
    assert abs(r["single_fit"]["ours"]["val_acc"] - r["single_fit"]["sklearn"]["val_acc"]) <= 2 / 80
    assert r["speedup"]["search_vs_sklearn"] > 0 and r["n_train"] == 200 and r["classes"] == 4
