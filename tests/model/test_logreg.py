import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from bench.model.logreg import fit_logreg, select_logreg
from bench.train.metrics import top1


def blobs(n=60, d=5, k=3, spread=1.5, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, spread, (k, d))
    y = rng.integers(0, k, n)
    return rng.normal(0, 1, (n, d)) + centers[y], y


@pytest.mark.parametrize("C", [0.05, 1.0, 20.0])
def test_agrees_with_sklearn_lbfgs(C):
    X, y = blobs()
    ref = LogisticRegression(C=C, max_iter=5000, tol=1e-10).fit(X, y)
    W, b = fit_logreg(torch.tensor(X), torch.tensor(y), 3, C, max_iter=2000, tol=1e-10)
    np.testing.assert_allclose(W.numpy(), ref.coef_, atol=2e-4)
    # sklearn's multinomial intercepts are defined up to a shared constant; compare centred values.
    np.testing.assert_allclose(b.numpy() - b.numpy().mean(), ref.intercept_ - ref.intercept_.mean(), atol=2e-4)
    assert (np.argmax(X @ W.numpy().T + b.numpy(), 1) == ref.predict(X)).all()


def test_separates_linearly_separable_features_and_picks_c_on_validation():
    X, y = blobs(n=200, spread=6.0, seed=1)
    X, y = torch.tensor(X), torch.tensor(y)
    found = select_logreg((X[:150], y[:150]), (X[150:], y[150:]), 3, [0.01, 1.0, 100.0], top1)
    assert found["score"] == 1.0
    assert top1(X[:150] @ found["weight"].T + found["bias"], y[:150]) == 1.0
    assert [c for c, _ in found["grid"]] == [0.01, 1.0, 100.0]
