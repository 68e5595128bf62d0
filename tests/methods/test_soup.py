"""Model soups, the pure parts: the uniform soup is the parameter mean, the greedy soup follows its rule
(ingredients best first by ID validation, each kept only if the soup's ID validation does not drop), and
soups over different zero-shot starts are refused with the reason."""
import dataclasses

import pytest
import torch

from bench.errors import BenchError
from bench.methods.soup import average, average_methods, check_compatible, derive_jobs, greedy
from helpers import make_job


def test_uniform_soup_is_the_hand_computed_parameter_mean():
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor(3.0), "n": torch.tensor([7])}
    b = {"w": torch.tensor([3.0, 6.0]), "b": torch.tensor(0.0), "n": torch.tensor([7])}
    c = {"w": torch.tensor([2.0, 1.0]), "b": torch.tensor(-3.0), "n": torch.tensor([7])}
    soup = average([a, b, c])
    assert torch.equal(soup["w"], torch.tensor([2.0, 3.0]))
    assert torch.equal(soup["b"], torch.tensor(0.0))
    assert torch.equal(soup["n"], torch.tensor([7]))
    # Method states: the head is averaged too (FT); a None head (FLYP) stays None, rebuilt from the averaged tower.
    ft = average_methods([{"model": a, "head": {"weight": a["w"]}}, {"model": b, "head": {"weight": b["w"]}}])
    assert torch.equal(ft["head"]["weight"], torch.tensor([2.0, 4.0]))
    flyp = average_methods([{"model": a, "head": None}, {"model": b, "head": None}])
    assert flyp["head"] is None and torch.equal(flyp["model"]["w"], torch.tensor([2.0, 4.0]))
    with pytest.raises(ValueError, match="non-floating"):
        average([a, {**b, "n": torch.tensor([8])}])


def test_greedy_soup_skips_an_ingredient_that_lowers_validation():
    # Validation prefers w near 0.96. Ingredients by their own scores: A (w=1) > B (w=3) > C (w=0.9).
    # Soup A+B has w=2, worse than A alone: B is skipped. Soup A+C has w=0.95, better: C is kept.
    states = {"A": torch.tensor([1.0]), "B": torch.tensor([3.0]), "C": torch.tensor([0.9])}
    score = lambda state: -abs(float(state["model"]["w"]) - 0.96)
    ingredients = [(n, {"model": {"w": w}, "head": None}, s) for (n, w), s in
                   zip(states.items(), (0.9, 0.8, 0.7))]
    seen = []
    chosen, soup, value = greedy(ingredients, lambda st: seen.append(float(st["model"]["w"])) or score(st))
    assert chosen == ["A", "C"]                                   # B skipped, C (added after B) kept
    assert torch.allclose(soup["model"]["w"], torch.tensor([0.95]))
    assert seen == pytest.approx([1.0, 2.0, 0.95])                             # A alone, A+B (rejected), A+C: in score order
    assert value == pytest.approx(score(soup))


def test_greedy_orders_by_the_recorded_validation_score_not_by_listing():
    ingredients = [("low", {"model": {"w": torch.tensor([5.0])}, "head": None}, 0.1),
                   ("high", {"model": {"w": torch.tensor([1.0])}, "head": None}, 0.9)]
    chosen, _, _ = greedy(ingredients, lambda st: -float(st["model"]["w"]))
    assert chosen == ["high"]


def test_soups_over_different_zero_shot_starts_are_refused(folder_root):
    a, b = make_job(folder_root, "ft", lr=1e-3), make_job(folder_root, "ft", lr=1e-4)
    assert [j.extra["soup"] for j in derive_jobs([a, b])] == ["uniform", "greedy"]
    other = dataclasses.replace(b, model={"arch": "bench-tiny", "pretrained": "openai"})
    with pytest.raises(BenchError, match="different zero-shot weights or architectures"):
        derive_jobs([a, other])
    with pytest.raises(BenchError, match="at least 2"):
        derive_jobs([a])
    with pytest.raises(BenchError, match="different architectures"):
        check_compatible([{"run_key": "k1", "arch": "bench-tiny", "weights": None, "activation": "gelu"},
                          {"run_key": "k2", "arch": "toy-clip", "weights": None, "activation": "gelu"}])
    with pytest.raises(BenchError, match="different zero-shot weights"):
        check_compatible([{"run_key": "k1", "arch": "toy-clip", "weights": "sha:1", "activation": "gelu"},
                          {"run_key": "k2", "arch": "toy-clip", "weights": "sha:2", "activation": "gelu"}])


def test_soup_listed_as_a_method_is_refused_with_the_way_to_make_soups():
    """`--methods soup` alone would run nothing: it is refused with the commands that make soups."""
    import pytest

    from bench.errors import BenchError
    from bench.jobs.plan import build_plan

    with pytest.raises(BenchError, match="--tune N"):
        build_plan(methods="ft,soup", check_data=False)
