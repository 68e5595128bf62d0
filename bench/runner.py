"""Run a plan in this process (the local executor), then WiSE-FT over finished finetuning runs."""
from __future__ import annotations

import time

from bench.plan import Plan


def mlflow_tracker_factory():
    from bench.tracking import MlflowTracker, tracking_uri

    uri = tracking_uri()
    cache: dict[str, object] = {}

    def make(job):
        # One client per experiment; a fresh tracker object per job (it holds that job's run id).
        if job.experiment not in cache:
            cache[job.experiment] = MlflowTracker(job.experiment, uri)
        return cache[job.experiment].fork()

    return make


def execute(plan: Plan, tracker_factory=None, log=print) -> list[tuple]:
    """Run every job, then WiSE-FT; returns [(job, summary)] in the order they ran."""
    from bench.engine import train_one
    from bench.methods.wiseft import derive_jobs, run_wiseft

    tracker_factory = tracker_factory or mlflow_tracker_factory()
    results = []
    for i, job in enumerate(plan.jobs, 1):
        t0 = time.time()
        log(f"== job {i}/{len(plan.jobs)}: {job.display_name} ({job.run_key})")
        summary = train_one(job, tracker_factory(job), log=log)
        log(f"== {job.display_name} finished in {time.time() - t0:.1f}s")
        results.append((job, summary))
    for job, _ in list(results):
        if job.method in plan.wiseft_bases:
            derived = derive_jobs(job, plan.alphas)
            log(f"== WiSE-FT over {job.display_name}: {len(derived)} alphas")
            results += list(zip(derived, run_wiseft(job, derived, tracker_factory, log)))
    return results
