"""A sweep: one (suite, task, method) crossed with the points of a space and the seeds, as plain Jobs.

The jobs come from the same planner as `bench run` (method defaults < suite < --config < --set give the
default point), so the local and Ray executors, and `bench run` itself, agree on every run_key. A sweep's
key hashes its experiment and its jobs' run_keys; its jobs are saved under $BENCH_HOME/sweeps/<key>/ so
that `bench status` lists them without the original command line.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field

from bench.errors import BenchError

SWEEP_VERSION = 1


@dataclass
class Sweep:
    key: str
    suite: str
    experiment: str
    task: str
    method: str
    space: dict                   # resolved space (Space.describe())
    space_source: str
    space_seed: int
    points: list[dict]            # full hparams of each point; index = hparam_idx (0 = default point)
    jobs: list                    # Job per (point, seed), point-major
    hparam_idx: list[int]         # per job
    metric: str                   # what ASHA and `best` compare: the task's validation metric (or val/loss)
    mode: str                     # max | min
    resources: dict = field(default_factory=dict)   # the suite's per-trial resources, if any
    num_samples: int | None = None                   # random draws actually made (--num-samples or the space's)

    @property
    def name(self) -> str:
        return f"sweep {self.method} {self.task}"

    @property
    def max_epochs(self) -> int:
        return max(int(j.hparams.get("epochs", 1)) for j in self.jobs)

    def tag_jobs(self, parent_run_id: str | None) -> None:
        for job, idx in zip(self.jobs, self.hparam_idx):
            job.tags = {"bench.sweep_key": self.key, "bench.hparam_idx": idx, "mlflow.runName": f"{job.display_name}-h{idx}",
                        **({"mlflow.parentRunId": parent_run_id} if parent_run_id else {})}

    def parent_tags(self) -> dict:
        # Not bench.method/bench.task: reports read every FINISHED run carrying those as a result row.
        return {"bench.suite": self.suite, "bench.sweep.method": self.method, "bench.sweep.task": self.task,
                "bench.model": self.jobs[0].model["arch"], "bench.sweep.metric": self.metric}

    def parent_params(self) -> dict:
        params = {"sweep.points": len(self.points), "sweep.jobs": len(self.jobs), "sweep.space_seed": self.space_seed,
                  "sweep.num_samples": self.space["num_samples"] if self.num_samples is None else self.num_samples, "sweep.space": self.space_source,
                  "sweep.seeds": ",".join(str(s) for s in sorted({j.seed for j in self.jobs})),
                  "task": self.task, "method": self.method}
        params.update({f"space.{k}": json.dumps(v) for k, v in self.space["hparams"].items()})
        return params

    def spec_text(self) -> str:
        import yaml

        spec = {"sweep_key": self.key, "suite": self.suite, "experiment": self.experiment, "task": self.task,
                "method": self.method, "space_source": self.space_source, "space": self.space,
                "space_seed": self.space_seed, "metric": self.metric, "mode": self.mode,
                "points": [{"hparam_idx": i, **{k: p[k] for k in sorted(p)}} for i, p in enumerate(self.points)],
                "jobs": [{"run_key": j.run_key, "hparam_idx": i, "seed": j.seed} for j, i in zip(self.jobs, self.hparam_idx)]}
        return yaml.safe_dump(spec, sort_keys=False)

    def save(self) -> None:
        """$BENCH_HOME/sweeps/<key>/sweep.yaml (readable) and jobs.json (the Jobs, for `bench status`)."""
        from bench.config import bench_home
        from bench.fsutil import write_json_atomic, write_text_atomic

        d = bench_home() / "sweeps" / self.key
        write_text_atomic(self.spec_text(), d / "sweep.yaml")
        jobs = [{k: v for k, v in dataclasses.asdict(j).items() if k != "tags"} for j in self.jobs]
        write_json_atomic({"version": SWEEP_VERSION, "key": self.key, "suite": self.suite, "experiment": self.experiment,
                           "task": self.task, "method": self.method, "hparam_idx": self.hparam_idx, "jobs": jobs,
                           "saved": time.time()}, d / "jobs.json")


def build_sweep(method: str, task: str | None = None, suite: str | None = None, folder: str | None = None,
                space: str | None = None, num_samples: int | None = None, space_seed: int = 0, seeds=None,
                model: str | None = None, pretrained: str | None = None, sets: list[str] | None = None,
                config: str | None = None, experiment: str | None = None, runtime: dict | None = None,
                quiet: bool = False) -> list[Sweep]:
    """One Sweep per task (every task of the suite when `task` is None). Every name, key, type, value and
    dataset is checked here, before anything is recorded."""
    from bench.config import method_defaults
    from bench.spec.job import stable_hash
    from bench.methods import METHODS
    from bench.jobs.plan import build_plan

    from .space import load_space

    if not method or "," in method:
        raise BenchError(f"bench sweep takes one method in --methods (got {method!r}); run one sweep per method.")
    METHODS.check(method)
    cls = METHODS.get(method)
    if METHODS.meta(method).get("derived") or not getattr(cls, "trains", True):
        trainers = [m for m in METHODS.names() if not METHODS.meta(m).get("derived") and getattr(METHODS.get(m), "trains", True)]
        raise BenchError(f"Method '{method}' does not train, so it has no hyperparameters to sweep "
                         f"(methods that train: {', '.join(trainers)}).")
    plan = build_plan(suite=suite, folder=folder, tasks=task, methods=method, model=model, pretrained=pretrained,
                      seeds=seeds, sets=sets, config=config, experiment=experiment, runtime=runtime)
    for warning in [] if quiet else plan.warnings:  # the default point's schedule, before any trial starts
        print(f"warning: {warning}")
    defaults = method_defaults(cls)
    suite_spec = _suite_spec(plan.suite, folder)
    sweeps = []
    for t in plan.tasks:
        templates = [j for j in plan.jobs if j.task == t]
        sp = load_space(space, method, t, defaults)  # validated before any sweep is built
        base = templates[0].hparams
        points = sp.points(base, space_seed, num_samples)
        jobs, idx = [], []
        for i, hp in enumerate(points):
            for template in templates:
                jobs.append(dataclasses.replace(template, hparams=dict(hp), tags={}, runtime=dict(template.runtime)))
                idx.append(i)
        key = stable_hash({"sweep": SWEEP_VERSION, "experiment": plan.experiment, "run_keys": [j.run_key for j in jobs]})
        val = templates[0].task_spec["val"]["metric"]
        metric, mode = ("val/loss", "min") if base.get("selection") == "min_val_loss" else (f"val/{val}", "max")
        sweeps.append(Sweep(key, plan.suite, plan.experiment, t, method, sp.describe(), sp.source, space_seed, points,
                            jobs, idx, metric, mode, dict(suite_spec.get("resources") or {}),
                            sp.num_samples if num_samples is None else num_samples))
    return sweeps


def _suite_spec(name: str, folder: str | None) -> dict:
    if folder:
        return {}
    from bench.spec.suites import load_suite

    spec = load_suite(name)
    res = spec.get("resources") or {}
    ok = isinstance(res, dict) and set(res) <= {"cpu", "gpu"} and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in res.values())
    if not ok:
        raise BenchError(f"Suite '{name}': 'resources' must be a mapping like {{cpu: 8, gpu: 1}} (per Ray trial), got {res!r}.")
    return spec


def saved_sweeps(suite: str | None = None, experiment: str | None = None) -> list[dict]:
    """Sweeps recorded in this BENCH_HOME (newest last), with their Jobs rebuilt from jobs.json."""
    from bench.config import bench_home
    from bench.spec.job import Job

    root = bench_home() / "sweeps"
    out = []
    for path in sorted(root.glob("*/jobs.json"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            jobs = [Job(**j) for j in data["jobs"]]
        except (ValueError, KeyError, TypeError):
            continue  # written by another version: not ours to interpret
        if suite and data.get("suite") != suite or experiment and data.get("experiment") != experiment:
            continue
        out.append({**data, "jobs": jobs})
    return out
