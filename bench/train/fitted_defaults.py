"""Engine defaults that fit the data, and the schedule each job will run.

The engine's defaults are ImageNet-scale (batch 256, paper warmup). Where neither the suite, a --config file
nor --set gives `batch_size` or `warmup`, they are derived from the training set: a batch of
clamp(n_train // 32, 16, 256) images, so that a small set still gets about 20 or more optimizer steps per
epoch (never more than a quarter of the set, so a tiny one gets at least 4), and a warmup of
WARMUP_FRACTION of all steps. An explicit
warmup longer than the whole run is capped to it (the learning rate would otherwise never reach `lr`), and
a run of fewer than MIN_STEPS steps is warned about: both before any work starts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

WARMUP_FRACTION = 0.05   # of all steps: FLYP's 500 warmup steps are 2-5% of its ImageNet/iWildCam runs
MIN_STEPS = 10           # fewer optimizer steps than this barely move a pretrained model
FITTED = ("batch_size", "warmup")
BATCH_DIVISOR, MIN_BATCH, MAX_BATCH = 32, 16, 256   # batch = clamp(n_train // 32, 16, 256)


def fitted_batch(n_train: int, cap: int = MAX_BATCH) -> int:
    """The default batch for `n_train` images: ~32 steps per epoch on small sets, 256 from 8192 images."""
    batch = min(cap, MAX_BATCH, max(MIN_BATCH, n_train // BATCH_DIVISOR))
    return max(1, min(batch, n_train // 4))


@dataclass
class Schedule:
    n_train: int
    steps_per_epoch: int
    total_steps: int

    def brief(self) -> str:
        return f"{self.n_train} imgs, {self.steps_per_epoch} steps/epoch, {self.total_steps} steps"


def fit_hparams(hp: dict, explicit: set[str], n_train: int, name: str) -> tuple[dict, Schedule, list[str]]:
    """(hparams with unset keys fitted to `n_train`, the resulting schedule, warnings to show before work)."""
    hp, warnings = dict(hp), []
    if "batch_size" not in explicit:
        hp["batch_size"] = fitted_batch(n_train, hp["batch_size"])
    steps = max(1, math.ceil(n_train / hp["batch_size"]))  # the training loader keeps the last partial batch
    total = steps * hp["epochs"]
    if "warmup" not in explicit:
        hp["warmup"] = round(WARMUP_FRACTION * total)
    elif hp["warmup"] > total:
        warnings.append(f"{name}: warmup={hp['warmup']} exceeds the run's {total} steps, so lr={hp['lr']:g} would "
                        f"never be reached; capped to warmup={total}. Set a shorter warmup (or leave it unset: "
                        f"{WARMUP_FRACTION:.0%} of the steps).")
        hp["warmup"] = total
    if total < MIN_STEPS:
        warnings.append(f"{name}: only {total} training step(s) ({n_train} images, batch_size={hp['batch_size']}, "
                        f"epochs={hp['epochs']}); the model will barely change. Raise epochs or lower batch_size "
                        f"(--set epochs=... --set batch_size=...).")
    return hp, Schedule(n_train, steps, total), warnings


def explicit_keys(method: str, layers: list[dict], keys=FITTED) -> set[str]:
    """Keys some layer (suite, task, --config, --set) sets for `method`, plain or scoped (`ft.warmup`)."""
    return {k for k in keys for layer in layers if k in (layer or {}) or f"{method}.{k}" in (layer or {})}


def train_size(task_name: str, spec: dict, seed: int) -> int:
    """Images in the task's training split for this seed (k-shot draws depend on it); no image is decoded."""
    from bench.spec.tasks import build_task

    task = build_task(task_name, spec, seed)
    return len(task.source.split(task.train_split))
