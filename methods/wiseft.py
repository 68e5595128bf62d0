"""WiSE-FT (Wortsman et al. 2022): theta = (1 - alpha) theta_zeroshot + alpha theta_finetuned.

Derived from a finished finetuning run: one recorded result per alpha. For FT, LP-FT and L2-SP the
image encoder and the linear head are interpolated (zero-shot head vs trained head). For FLYP and
FLYP-CE, whose heads come from the text tower, both towers and the temperature are interpolated and the
head is rebuilt from the interpolated text tower (interpolating two built heads would be wrong: the head
is a normalised, nonlinear function of the text weights).

This module holds the interpolation and the derived jobs; bench/jobs/wiseft.py evaluates them under the
job lifecycle.
"""
from __future__ import annotations

from bench.spec.job import Job


class WiseFT:
    name = "wiseft"
    label = "WiSE-FT"
    trains = False
    wiseft = False
    hparams: dict = {}


def interpolate(theta0: dict, theta1: dict, alpha: float) -> dict:
    """(1 - alpha) theta0 + alpha theta1 on floating tensors (exact at alpha 0 and 1); others from theta1."""
    if theta0.keys() != theta1.keys():
        missing = sorted(set(theta0) ^ set(theta1))[:5]
        raise ValueError(f"cannot interpolate state dicts with different keys: {missing}")
    out = {}
    for k, v1 in theta1.items():
        v0 = theta0[k].to(v1.device)
        out[k] = (1 - alpha) * v0 + alpha * v1 if v1.is_floating_point() else v1.clone()
    return out


def derive_jobs(base: Job, alphas: list[float]) -> list[Job]:
    return [
        Job(suite=base.suite, experiment=base.experiment, task=base.task, task_spec=base.task_spec,
            method="wiseft", hparams={}, seed=base.seed, model=base.model, runtime=base.runtime,
            extra={"base_method": base.method, "base_run_key": base.run_key, "alpha": float(a)})
        for a in alphas
    ]
