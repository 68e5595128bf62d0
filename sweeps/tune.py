"""`bench run --tune N`: tune the finetuning methods on ID validation before the comparison, as the paper
tuned its baselines. For each method of the run that trains, and each task, a sweep (sweeps/sweep.py) of the
suite's setting plus N draws from the method's space (`sweeps/spaces/<method>.yaml`, else default.yaml)
runs through the one launcher, with its MLflow parent run. The run's own jobs are the sweeps' first points,
so nothing trains twice; the report then picks each method's hyperparameters on ID validation ("best of K
hparam configs" in its notes), and WiSE-FT ensembles every finished configuration.
"""
from __future__ import annotations

import logging

from bench.errors import BenchError

log = logging.getLogger(__name__)


def tune(args, plan, opts) -> tuple[list, list[str]]:
    """Run the sweeps; returns (their jobs, the run_keys of the trials that failed). Every sweep is built
    (and so every space, key and dataset checked) before the first trial starts."""
    from bench.launch.launcher import launch
    from bench.methods import METHODS
    from bench.sweeps.cli import sweep_soups
    from bench.sweeps.sweep import build_sweep

    if args.tune < 1:
        raise BenchError(f"--tune takes the number of draws per method and task (>= 1), got {args.tune}.")
    methods = [m for m in plan.methods if not METHODS.meta(m).get("derived") and METHODS.get(m).trains]
    if not methods:
        raise BenchError("--tune sweeps methods that train; add one of ft, lpft, l2sp, flyp, flyp-ce to --methods.")
    sweeps = []
    for method in methods:
        sweeps += build_sweep(method, task=",".join(plan.tasks), suite=None if args.folder else plan.suite,
                              folder=args.folder, num_samples=args.tune, model=args.model, pretrained=args.pretrained,
                              seeds=args.seeds, sets=args.sets, config=args.config, experiment=plan.experiment,
                              runtime=plan.jobs[0].runtime if plan.jobs else None)
    failed = []
    for sw in sweeps:
        log.info("== tuning %s on %s: %d point(s), sweep %s", sw.method, sw.task, len(sw.points), sw.key)
        outcome = launch(sw.jobs, opts, sweep=sw)
        failed += outcome.failed
        # Soups of the tuned configurations (K >= 2 per seed), with WiSE-FT where the run asks for it.
        wise = plan.alphas if sw.method in plan.wiseft_bases else None
        failed += sweep_soups(sw, outcome.parent_run_id, alphas=wise)
    return [j for sw in sweeps for j in sw.jobs], failed
