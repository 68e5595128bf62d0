"""Model soups (Wortsman et al., ICML 2022): average the weights of K finetuned models that share one zero-shot
start, with no extra inference cost.

    uniform  the mean of all K ingredients
    greedy   ingredients sorted by ID-validation score, best first; each is added to the soup only if the
             soup's ID-validation score does not drop (the paper's rule; ID validation only, never a test set)

What is averaged follows the method's state (methods/base.py): for FT, LP-FT and L2-SP the whole CLIP state
and the trained linear head; for FLYP and FLYP-CE (head None) both towers and the temperature, and the head is
rebuilt from the averaged text tower at evaluation (averaging built heads would be wrong: a head is a
normalised, nonlinear function of the text weights).

This module holds the averaging, the greedy rule, the compatibility check and the derived jobs;
bench/jobs/soup.py evaluates them under the job lifecycle.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from bench.errors import BenchError
from bench.spec.job import Job

KINDS = ("uniform", "greedy")
MIN_INGREDIENTS = 2


class Soup:
    name = "soup"
    label = "Soup"
    trains = False
    wiseft = False
    hparams: dict = {}


def average(states: Sequence[dict]) -> dict:
    """The elementwise mean of floating tensors (in fp32, cast back); non-floating tensors must agree."""
    if not states:
        raise ValueError("a soup needs at least one ingredient")
    keys = states[0].keys()
    for s in states[1:]:
        if s.keys() != keys:
            raise ValueError(f"cannot average state dicts with different keys: {sorted(set(keys) ^ set(s))[:5]}")
    out = {}
    for k, v0 in states[0].items():
        if v0.is_floating_point():
            total = torch.zeros_like(v0, dtype=torch.float32)
            for s in states:
                total += s[k].to(total.device, torch.float32)
            out[k] = (total / len(states)).to(v0.dtype)
        else:
            if any(not torch.equal(s[k], v0) for s in states[1:]):
                raise ValueError(f"ingredients disagree on non-floating tensor '{k}'")
            out[k] = v0.clone()
    return out


def average_methods(states: Sequence[dict]) -> dict:
    """Average method states {"model", "head"}: the head too where every ingredient has one; None (rebuild from
    the averaged text tower) where none has."""
    heads = [s.get("head") for s in states]
    if any(h is None for h in heads) and not all(h is None for h in heads):
        raise ValueError("some ingredients have a trained head and some do not")
    return {"model": average([s["model"] for s in states]),
            "head": None if heads[0] is None else average(heads)}


def greedy(ingredients: Sequence[tuple[str, dict, float]], score: Callable[[dict], float]) -> tuple[list[str], dict, float]:
    """The greedy soup. `ingredients`: (name, method state, its own ID-validation score); `score(state)` gives a
    candidate soup's ID-validation score (higher is better). Returns (names kept, in order of addition, the
    soup's state, its score). An ingredient joins when the soup with it scores at least as well as without."""
    order = sorted(ingredients, key=lambda t: (-t[2], t[0]))  # best first; ties by name, so the order is stable
    kept = [order[0]]
    best_state, best = order[0][1], score(order[0][1])  # scored like every candidate, not the recorded value
    for item in order[1:]:
        candidate = average_methods([s for _, s, _ in kept] + [item[1]])
        value = score(candidate)
        if value >= best:
            kept.append(item)
            best_state, best = candidate, value
    return [name for name, _, _ in kept], best_state, best


def check_compatible(described: Sequence[dict]) -> None:
    """Ingredients must share the zero-shot start: one architecture (with its activation) and one set of
    pretrained weights. `described`: per ingredient {"run_key", "arch", "weights", "activation"}."""
    for field, what in (("arch", "architectures"), ("weights", "zero-shot weights"), ("activation", "activations")):
        values = {d.get(field) for d in described}
        if len(values) > 1:
            which = ", ".join(f"{d['run_key']}: {d.get(field)}" for d in described)
            raise BenchError(f"Cannot make a soup of runs from different {what} ({which}): a soup averages models "
                             f"finetuned from one zero-shot start. Soup runs of one --model/--pretrained only.")


def derive_jobs(bases: Sequence[Job], kinds: Sequence[str] = KINDS) -> list[Job]:
    """One soup job per kind over `bases`: K >= 2 finished runs of one (task, method, seed, model)."""
    if len(bases) < MIN_INGREDIENTS:
        raise BenchError(f"A soup needs at least {MIN_INGREDIENTS} finished configurations, got {len(bases)}.")
    b0 = bases[0]
    for b in bases[1:]:
        for field in ("task", "method", "seed", "experiment"):
            if getattr(b, field) != getattr(b0, field):
                raise BenchError(f"A soup mixes runs of one {field}: {getattr(b0, field)!r} vs {getattr(b, field)!r}.")
        if b.model != b0.model:
            raise BenchError(f"Cannot make a soup of runs from different zero-shot weights or architectures "
                             f"({b0.model} vs {b.model}); soup runs of one --model/--pretrained only.")
    keys = sorted(b.run_key for b in bases)
    if len(set(keys)) < len(keys):
        raise BenchError("A soup lists each ingredient once.")
    for kind in kinds:
        if kind not in KINDS:
            raise BenchError(f"Unknown soup kind '{kind}'; choose from {', '.join(KINDS)}.")
    return [Job(suite=b0.suite, experiment=b0.experiment, task=b0.task, task_spec=b0.task_spec, method="soup",
                hparams={}, seed=b0.seed, model=b0.model, runtime=b0.runtime,
                extra={"base_method": b0.method, "soup": kind, "ingredients": keys})
            for kind in kinds]
