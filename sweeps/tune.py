"""`bench run --tune N`: tune the finetuning methods on ID validation before the comparison, as the paper
tuned its baselines. For each method of the run that trains, and each task, a sweep (sweeps/sweep.py) of the
suite's setting plus N draws from the method's space (`sweeps/spaces/<method>.yaml`, else default.yaml)
runs through the one launcher, with its MLflow parent run. The run's own jobs are the sweeps' first points,
so nothing trains twice; the report then picks each method's hyperparameters on ID validation ("best of K
hparam configs" in its notes), and WiSE-FT ensembles every finished configuration.

Without --tune, `bench run` searches the learning rate of every (task, method) whose lr nothing sets (the
plan's `lr_search`: your --folder data on pretrained weights), because the paper's 1e-5 was chosen for
~50k ImageNet steps and moves nothing in a few hundred (`search_lr`, below). The grid is the bundled space
`lr-grid` (4 log-spaced values, 1e-5 to 1e-3). The local executor has no ASHA, so hopeless points stop by
successive halving over epochs: every point trains to the first rung (E/4 epochs), the better half goes on
to E/2, the best one to E, each resuming from its checkpoint with its own full-length schedule (no
short-horizon bias). 4 points cost 4*E/4 + 2*E/4 + E/2 = 2 runs' epochs; the survivor is the run itself,
so nothing trains again. The losers are recorded stopped (KILLED runs under the sweep's parent run); the
survivor's run is tagged `bench.tuned` so the report's row says "lr tuned on ID val: best of K".
"""
from __future__ import annotations

import json
import logging
import math
import time

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


LR_SPACE = "lr-grid"
ETA = 2  # successive halving keeps the better 1/ETA of the points at each rung


def rungs(epochs: int, points: int) -> list[int]:
    """Epochs at which successive halving compares points: E/ETA^k, ..., E/ETA, E (distinct, >= 1)."""
    levels = max(0, math.ceil(math.log(max(points, 1), ETA)))
    return sorted({max(1, math.ceil(epochs / ETA ** k)) for k in range(levels + 1)})


def survivors(alive: int, level: int, levels: int) -> int:
    """Points kept after rung `level` of `levels`: the better 1/ETA, and one alone for the last stretch (short
    runs have fewer distinct rungs than halvings)."""
    if level >= levels - 1:
        return alive
    return 1 if level == levels - 2 else max(1, math.ceil(alive / ETA))


def halving_cost(epochs: int, points: int) -> float:
    """Epochs trained by the search, in units of one run's epochs (E >= 2: at most 2.5; E = 1: every point)."""
    total, alive, done = 0, points, 0
    marks = rungs(epochs, points)
    for i, r in enumerate(marks):
        total += alive * (r - done)
        done = r
        alive = survivors(alive, i, len(marks))
    return total / epochs


def lr_grid(method: str, task: str) -> list[float]:
    from bench.config import method_defaults
    from bench.methods import METHODS

    from .space import load_space

    space = load_space(LR_SPACE, method, task, method_defaults(METHODS.get(method)))
    return [float(v) for d in space.grid if d.name == "lr" for v in d.values]


def describe_search(plan) -> list[str]:
    """Dry-run lines: per searched (task, method), the lr grid, batch, steps and the halving schedule."""
    lines = []
    for task, method in plan.lr_search:
        jobs = [(j, s) for j, s in zip(plan.jobs, plan.schedules or [None] * len(plan.jobs))
                if j.task == task and j.method == method]
        job, schedule = jobs[0]
        grid = lr_grid(method, task)
        epochs = int(job.hparams["epochs"])
        marks, alive, steps = rungs(epochs, len(grid)), len(grid), []
        for i, r in enumerate(marks):
            steps.append(f"{alive} @ epoch {r}")
            alive = survivors(alive, i, len(marks))
        sched = f"batch {job.hparams['batch_size']}, " + (f"{schedule.steps_per_epoch} steps/epoch, {schedule.total_steps} "
                                                          f"steps per run" if schedule else "steps unknown (data not read)")
        lines.append(f"lr search on ID validation: {method} on {task}: lr in [{', '.join(f'{v:g}' for v in grid)}]; "
                     f"{sched}; successive halving {' -> '.join(steps)} (~{halving_cost(epochs, len(grid)):.1f}x one "
                     "run). --set lr=... skips it, --no-tune runs lr as set.")
    return lines


def search_lr(args, plan, opts) -> list[str]:
    """Search the lr of each of `plan.lr_search` on ID validation, replace the plan's job of that (task,
    method) by the chosen point's (so the main launch finds it done and WiSE-FT ensembles it) and return
    the run_keys of the trials that failed."""
    from bench.sweeps.sweep import build_sweep

    failed = []
    for task, method in plan.lr_search:
        sw, = build_sweep(method, task=task, suite=None if args.folder else plan.suite, folder=args.folder,
                          space=LR_SPACE, model=args.model, pretrained=args.pretrained, seeds=args.seeds,
                          sets=args.sets, config=args.config, experiment=plan.experiment,
                          runtime=plan.jobs[0].runtime if plan.jobs else None, quiet=True)
        t0 = time.time()
        chosen, bad = _search(sw, opts)
        failed += bad
        if chosen is None:
            continue
        lr = sw.points[chosen]["lr"]
        winners = {j.seed: j for j, i in zip(sw.jobs, sw.hparam_idx) if i == chosen}
        plan.jobs = [winners.get(j.seed, j) if (j.task, j.method) == (task, method) else j for j in plan.jobs]
        grid = [p["lr"] for p in sw.points]
        print(f"lr search: {method} on {task}: chose lr={lr:g} of [{', '.join(f'{v:g}' for v in grid)}] on "
              f"{sw.metric} in {time.time() - t0:.1f}s (~{halving_cost(sw.max_epochs, len(grid)):.1f}x one run's epochs)")
        if len(grid) > 1 and lr in (min(grid), max(grid)):
            edge, way = ("lowest", "below") if lr == min(grid) else ("highest", "above")
            print(f"warning: {method} on {task}: the chosen lr={lr:g} is the {edge} value of the grid, so a better "
                  f"one may lie {way} it. Widen the range: `bench sweep --method {method} --space FILE.yaml` with an lr "
                  f"grid reaching {way} {lr:g} (see sweeps/spaces/{LR_SPACE}.yaml), then `bench run --set {method}.lr=BEST`.")
    return failed


class _StopAt:
    """Reporter: stop the job once it has trained `epoch` epochs (it keeps its checkpoint to resume from)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def report(self, metrics: dict, epoch: int) -> bool:
        return epoch >= self.epoch


def _search(sw, opts) -> tuple[int | None, list[str]]:
    """Successive halving of the sweep's points locally; (index of the chosen point, failed run_keys).
    With --executor ray or several processes per job the whole grid runs through the launcher instead
    (Ray with ASHA at the same rungs)."""
    import dataclasses

    from bench.launch.launcher import launch

    marks = rungs(sw.max_epochs, len(sw.points))
    if opts.executor != "local" or any(int(j.runtime.get("nproc", 1) or 1) > 1 for j in sw.jobs):
        if opts.executor == "ray":
            opts = dataclasses.replace(opts, asha={"grace_period": marks[0], "reduction_factor": ETA})
        outcome = launch(sw.jobs, opts, sweep=sw)
        finished = [i for i in range(len(sw.points)) if all((j.run_dir / "done.json").is_file() for j in _point_jobs(sw, i))]
        scores = {i: _score(sw, i, sw.max_epochs) for i in finished}  # ASHA's stopped trials are not candidates
        best = _best(sw, {i: v for i, v in scores.items() if v is not None})
        if best is not None:
            _tag_winner(sw, best, outcome.parent_run_id)
        return best, list(outcome.failed)
    return _halving(sw, marks)


def _halving(sw, marks: list[int]) -> tuple[int | None, list[str]]:
    from bench.jobs.lifecycle import train_one
    from bench.jobs.state import DONE, job_states, mark_stopped, prepare_launch
    from bench.launch.launcher import tracker_factory
    from bench.launch.preflight import check_home
    from bench.tracking.runs import MlflowTracker
    from bench.tracking.store import tracking_uri

    check_home()
    uri = tracking_uri()
    tracker = MlflowTracker(sw.experiment, uri)
    sw.save()
    parent = tracker.open_parent(sw.key, sw.name, sw.parent_tags(), sw.parent_params(), sw.spec_text())
    sw.tag_jobs(parent)
    make = tracker_factory(uri)
    alive, failed, status = list(range(len(sw.points))), [], "KILLED"
    try:
        for level, rung in enumerate(marks):
            states = dict(zip((j.run_key for j in sw.jobs), job_states(sw.jobs, uri)))
            for i in list(alive):
                for job in _point_jobs(sw, i):
                    if states[job.run_key] == DONE or (rung < sw.max_epochs and _trained(job) >= rung):
                        continue  # a rerun: this point already reached the rung
                    prepare_launch(job)
                    log.info("== lr search %s/%s: point h%d (lr=%g) to epoch %d of %d", sw.method, sw.task, i,
                             sw.points[i]["lr"], rung, sw.max_epochs)
                    try:
                        train_one(job, make(job), reporter=_StopAt(rung) if rung < sw.max_epochs else None)
                    except KeyboardInterrupt:
                        raise
                    except Exception as exc:  # the launcher's policy: record it, go on with the others
                        log.error("== %s FAILED: %s: %s", job.display_name, type(exc).__name__, exc)
                        failed.append(job.run_key)
            scores = {i: _score(sw, i, rung) for i in alive}
            alive = [i for i in alive if scores[i] is not None]
            if level < len(marks) - 1:
                keep = survivors(len(alive), level, len(marks))
                ranked = sorted(alive, key=lambda i: _rank(sw, i, scores[i]))
                for i in ranked[keep:]:
                    for job in _point_jobs(sw, i):
                        mark_stopped(job, {"by": "successive halving", "rung": rung, "score": scores[i],
                                           "metric": sw.metric})
                        tracker.end_unfinished(job.run_key, "KILLED", among=("KILLED", "RUNNING"),
                                               tags={"bench.stopped_by": f"successive halving at epoch {rung}"})
                alive = sorted(ranked[:keep])
        status = "FAILED" if failed else "FINISHED"
    finally:
        tracker.set_status(parent, status)
    best = _best(sw, {i: _score(sw, i, sw.max_epochs) for i in alive}) if alive else None
    if best is not None:
        _tag_winner(sw, best, parent)
    return best, failed


def _point_jobs(sw, i: int) -> list:
    return [j for j, idx in zip(sw.jobs, sw.hparam_idx) if idx == i]


def _trained(job) -> int:
    """Epochs a job has trained: its done marker, else its checkpoint."""
    from bench.jobs import checkpoints

    if (job.run_dir / "done.json").is_file():
        return int(job.hparams["epochs"])
    ckpt = checkpoints.load_latest(job.run_dir / "checkpoint.pt") if job.run_dir.is_dir() else None
    return int(ckpt["epoch"]) if ckpt else 0


def _score(sw, i: int, rung: int) -> float | None:
    """The point's selection metric at `rung` (the best epoch so far, as in-run selection), averaged over
    its seeds; None when a seed has nothing (it failed)."""
    from bench.jobs import checkpoints

    values = []
    key = sw.metric
    better = max if sw.mode == "max" else min
    for job in _point_jobs(sw, i):
        done = job.run_dir / "done.json"
        if done.is_file():
            value = json.loads(done.read_text()).get(f"sel/{key}")
        else:
            ckpt = checkpoints.load_latest(job.run_dir / "checkpoint.pt") if job.run_dir.is_dir() else None
            seen = [h[key] for h in (ckpt or {}).get("history", []) if key in h and h.get("epoch", 0) <= rung]
            value = better(seen) if seen else None
        if value is None:
            return None
        values.append(float(value))
    return sum(values) / len(values)


def _rank(sw, i: int, score: float) -> tuple:
    return (-score if sw.mode == "max" else score, i)  # ties go to the lower lr (the grid's order)


def _best(sw, scores: dict) -> int | None:
    return min(scores, key=lambda i: _rank(sw, i, scores[i])) if scores else None


def _tag_winner(sw, best: int, parent: str | None) -> None:
    """The chosen point's runs say what they won (the report's note), and the parent run records it."""
    from bench.tracking.runs import MlflowTracker

    tracker = MlflowTracker(sw.experiment)
    index = tracker.runs_by_key()
    for job in _point_jobs(sw, best):
        for run_id, status in index.get(job.run_key, []):
            if status == "FINISHED":
                tracker.client.set_tag(run_id, "bench.tuned", f"lr:{len(sw.points)}")
    if parent:
        tracker.record_best(parent, sw.metric, sw.mode)
