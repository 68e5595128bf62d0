import math

import pytest

from bench.train.schedule import cosine_lr


def test_warmup_then_cosine_matches_reference_formula():
    base, warmup, total = 1e-3, 4, 20
    assert cosine_lr(0, base, warmup, total) == pytest.approx(base / 4)
    assert cosine_lr(3, base, warmup, total) == pytest.approx(base)
    for step in range(warmup, total):
        ref = 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))) * base
        assert cosine_lr(step, base, warmup, total) == pytest.approx(ref)


def test_no_division_by_zero_when_warmup_equals_total():
    assert cosine_lr(4, 1.0, 5, 5) == pytest.approx(1.0)
    assert cosine_lr(5, 1.0, 5, 5) == pytest.approx(1.0)  # past the end: stays finite
    assert cosine_lr(0, 1.0, 0, 10) == pytest.approx(1.0)
