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

from bench.engine import TrainBody, job_params, job_tags, prepare
from bench.evaluate import Evaluator
from bench.jobs import Job
from bench.lifecycle import JobContext, JobLifecycle, Result
from bench.methods.wiseft import interpolate

log = logging.getLogger(__name__)


class _Shared:
    """The zero-shot and finetuned endpoints and an evaluator, loaded once for every alpha of a base."""

    def __init__(self, base: Job, tracker_factory):
        self.base, self.tracker_factory = base, tracker_factory
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
                                   rt.get("workers", 0), self.prep.device, context=self.prep.precision.inference)
        self.ready = True


class AlphaBody:
    kind = "wiseft"
    resumable = False

    def __init__(self, job: Job, shared: _Shared):
        self.job, self.shared = job, shared

    def prepare(self) -> tuple[dict, dict]:
        self.shared.load()
        prep = self.shared.prep
        return job_params(self.job, prep.task, prep), job_tags(self.job, prep.device)

    def execute(self, jc: JobContext) -> Result:
        sh, alpha = self.shared, self.job.extra["alpha"]
        head = None if sh.ft_head is None else interpolate(sh.zs_head, sh.ft_head, alpha)
        sh.method.load_state_dict({"model": interpolate(sh.zs_model, sh.ft_model, alpha), "head": head})
        sh.method.train(False)
        metrics = sh.evaluator(sh.method.classifier())
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
    shared = _Shared(base, tracker_factory)
    return [JobLifecycle(job, tracker_factory(job)).run(AlphaBody(job, shared), wait=wait) for job in jobs]
