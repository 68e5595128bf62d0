"""WiSE-FT as derived evaluations: each alpha of a finished base run is a job of its own (its own lock,
MLflow run and done marker) run by the job lifecycle, and all alphas of one base share one model load and
one evaluator. The base's selected weights are checked against the digest its done marker recorded; lost or
corrupt weights send the base job back to training (its old run is kept, marked FAILED) before any alpha
is evaluated.
"""
from __future__ import annotations

import copy
import logging

import torch

from bench.train.engine import TrainBody, job_params, job_tags, prepare
from bench.train.evaluate import Evaluator
from bench.spec.job import Job
from bench.jobs.lifecycle import JobContext, JobLifecycle
from bench.train.body import Result
from bench.model.losses import pretraining_objective
from bench.methods.wiseft import interpolate

log = logging.getLogger(__name__)
ALPHAS_PER_PASS = 11  # model copies held at once: 11 x ViT-B/16 is ~7 GB in fp32


class _Shared:
    """The zero-shot and finetuned endpoints and an evaluator, loaded once for every alpha of a base."""

    def __init__(self, base: Job, tracker_factory, pending: list[float]):
        self.base, self.tracker_factory, self.pending = base, tracker_factory, pending
        self.ready = False

    def load(self) -> None:
        if self.ready:
            return
        path = self.base.run_dir / "selected.pt"
        try:
            selected = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a marker without a digest (older runs) cannot vouch for the file
            ensure_base(self.base, self.tracker_factory(self.base), f"selected.pt unreadable ({type(exc).__name__})")
            selected = torch.load(path, map_location="cpu", weights_only=False)
        self.prep, ctx = prepare(self.base, method_name="zeroshot")
        self.method = self.prep.method
        self.method.setup(ctx)
        self.zs_model = copy.deepcopy(self.method.model.state_dict())
        self.zs_head = self.method.head.state_dict()
        self.ft_model, self.ft_head = selected["state_dict"], selected["bench_head"]
        rt = self.base.runtime
        self.evaluator = Evaluator(self.prep.task.sets, self.prep.loaded.eval_transform, rt.get("eval_batch_size", 256),
                                   rt.get("workers", 0), self.prep.device, context=self.prep.precision.inference,
                                   objective=pretraining_objective(self.prep.loaded.model))
        self.computed: dict[float, dict] = {}
        self.served: set[float] = set()  # alphas already handed out: never evaluated again in a later pass
        if 0.0 in self.pending:  # the zero-shot endpoint, from cached features, before any interpolation
            self.computed[0.0] = self.evaluator.evaluate_features(self.method.head, self.prep.features.features)
        self.ready = True


    def metrics(self, alpha: float, pending: list[float]) -> dict:
        """Metrics at `alpha`. The first call evaluates every pending alpha in one pass over the evaluation
        sets (each image decoded once for all of them, bench/train/evaluate.py evaluate_many), ALPHAS_PER_PASS
        model copies at a time."""
        if alpha not in self.computed:
            todo = [a for a in dict.fromkeys([alpha, *pending])
                    if a not in self.computed and a not in self.served][:ALPHAS_PER_PASS]
            methods = [self._method_at(a, fresh=i > 0) for i, a in enumerate(todo)]
            results = self.evaluator.evaluate_many([m.classifier() for m in methods])
            self.computed.update(zip(todo, results))
        self.served.add(alpha)
        return self.computed.pop(alpha)

    def _method_at(self, alpha: float, fresh: bool):
        method = copy.deepcopy(self.method) if fresh else self.method
        head = None if self.ft_head is None else interpolate(self.zs_head, self.ft_head, alpha)
        method.load_state_dict({"model": interpolate(self.zs_model, self.ft_model, alpha), "head": head})
        method.train(False)
        return method


class AlphaBody:
    kind = "wiseft"
    resumable = False

    def __init__(self, job: Job, shared: _Shared):
        self.job, self.shared = job, shared

    def prepare(self) -> tuple[dict, dict]:
        self.shared.load()
        prep, base = self.shared.prep, self.shared.base
        tags = job_tags(self.job, prep.device)
        # Nested under the base run in MLflow's table, alpha first so a cut name still says which one.
        tags["mlflow.runName"] = f"a={self.job.extra['alpha']:.1f} {base.task}-{base.method}-s{base.seed}"
        done = JobLifecycle(base).load_done()
        if isinstance(done, dict) and done.get("run_id"):
            tags["mlflow.parentRunId"] = done["run_id"]
        return job_params(self.job, prep.task, prep), tags

    def execute(self, jc: JobContext) -> Result:
        sh, alpha = self.shared, self.job.extra["alpha"]
        metrics = sh.metrics(alpha, sh.pending)
        jc.log_metrics({**metrics, "alpha": alpha}, step=0)
        val_key = sh.prep.task.val.key
        log.info("[%s] %s %.4f%s", self.job.display_name, val_key, metrics[val_key],
                 f" ood/avg {metrics['ood/avg']:.4f}" if "ood/avg" in metrics else "")
        return Result({"sel/epoch": 0, **{f"sel/{k}": v for k, v in metrics.items()}})


def ensure_base(base: Job, tracker, broken: str | None = None) -> None:
    """The base run is done with intact selected weights; train (or retrain) it when it is not."""
    life = JobLifecycle(base, tracker)
    done = life.load_done()
    if done is not None and (broken or not life.selected_ok(done)):
        life.invalidate(broken or "selected.pt is missing or does not match its recorded digest")
    life.run(TrainBody(base))


def run_wiseft(base: Job, jobs: list[Job], tracker_factory, wait: bool = True) -> list[dict]:
    """Evaluate every alpha of one base run; returns their summaries in order. Alphas another process holds
    raise Busy when `wait` is False."""
    ensure_base(base, tracker_factory(base))
    pending = [j.extra["alpha"] for j in jobs if JobLifecycle(j).load_done() is None]
    shared = _Shared(base, tracker_factory, pending)
    return [JobLifecycle(job, tracker_factory(job)).run(AlphaBody(job, shared), wait=wait) for job in jobs]
