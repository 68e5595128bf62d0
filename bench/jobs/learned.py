"""After a run: say so, loudly, when a training method did not learn.

A training job whose selected ID-validation score is within noise of the zero-shot model's (same task and
seed), or of chance when the zero-shot model is itself at chance (or absent from the run), did not learn:
on small data the paper's lr 1e-5 over a few dozen steps moves nothing, and a table that compares such rows
("FLYP = chance, FT beats FLYP") draws a wrong conclusion. Noise is two binomial standard errors of an
accuracy on the validation set's n images, 2 * sqrt(p (1 - p) / n), at least one image (1 / n). The job's
MLflow run gets the tag `bench.did_not_learn` ("lr 1e-05, 50 steps"), which the report's row shows.
"""
from __future__ import annotations

import json
import math

NOISE_SE = 2.0  # standard errors


def noise(p: float, n: int) -> float:
    return max(NOISE_SE * math.sqrt(max(p * (1 - p), 0.0) / n), 1.0 / n)


def did_not_learn(score: float, zeroshot: float | None, chance: float, n_val: int) -> bool:
    """Within noise of zero-shot, or of chance where zero-shot is at chance or unknown."""
    at_chance = zeroshot is None or abs(zeroshot - chance) <= noise(chance, n_val)
    if at_chance:
        return score - chance <= noise(chance, n_val)
    return abs(score - zeroshot) <= noise(zeroshot, n_val)


def check_learned(plan) -> list[str]:
    """Warnings for the plan's finished training jobs that did not learn; their runs are tagged."""
    from bench.methods import METHODS
    from bench.spec.tasks import build_task

    schedules = plan.schedules or [None] * len(plan.jobs)
    done = {j.run_key: _summary(j) for j in plan.jobs}
    out, tasks = [], {}
    for job, schedule in zip(plan.jobs, schedules):
        if job.method not in METHODS or METHODS.meta(job.method).get("derived") or not METHODS.get(job.method).trains:
            continue
        if (job.task, job.seed) not in tasks:
            task = build_task(job.task, job.task_spec, job.seed)
            tasks[(job.task, job.seed)] = (task.val.key, len(task.classnames),
                                           len(task.val.source.split(task.val.split)))
        key, n_classes, n_val = tasks[(job.task, job.seed)]
        score = (done[job.run_key] or {}).get(f"sel/{key}")
        if score is None or not n_val:
            continue
        zs = next((done[z.run_key].get(f"sel/{key}") for z in plan.jobs if z.method == "zeroshot"
                   and z.task == job.task and z.seed == job.seed and done[z.run_key]), None)
        if not did_not_learn(score, zs, 1.0 / n_classes, n_val):
            continue
        steps = f", {schedule.total_steps} steps" if schedule else ""
        note = f"lr {job.hparams.get('lr', '?'):g}{steps}"
        against = f"zero-shot's {zs:.3f}" if zs is not None and abs(zs - 1.0 / n_classes) > noise(1.0 / n_classes, n_val) \
            else f"chance ({1.0 / n_classes:.3f})"
        out.append(f"{job.method} on {job.task} (seed {job.seed}) did not learn: {key} {score:.3f} is within noise of "
                   f"{against} on {n_val} validation images ({note}). Raise lr (--set {job.method}.lr=...), or leave lr "
                   "unset so bench searches it, or train longer (--set epochs=...).")
        _tag(job, note)
    return out


def _summary(job) -> dict | None:
    path = job.run_dir / "done.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


def _tag(job, note: str) -> None:
    from bench.tracking.runs import MlflowTracker

    tracker = MlflowTracker(job.experiment)
    for run_id, status in tracker.runs_by_key().get(job.run_key, []):
        if status == "FINISHED":
            tracker.client.set_tag(run_id, "bench.did_not_learn", note)
