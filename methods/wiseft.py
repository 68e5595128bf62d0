"""WiSE-FT (Wortsman et al. 2022): theta = (1 - alpha) theta_zeroshot + alpha theta_finetuned.

Derived from a finished finetuning run: one recorded result per alpha. For FT, LP-FT and L2-SP the
image encoder and the linear head are interpolated (zero-shot head vs trained head). For FLYP and
FLYP-CE, whose heads come from the text tower, both towers and the temperature are interpolated and the
head is rebuilt from the interpolated text tower (interpolating two built heads would be wrong: the head
is a normalised, nonlinear function of the text weights).
"""
from __future__ import annotations

import copy

import torch

from bench.engine import job_params, job_tags, load_done, prepare
from bench.evaluate import Evaluator
from bench.fsutil import write_json_atomic
from bench.jobs import Job


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


def run_wiseft(base: Job, jobs: list[Job], tracker_factory, log=print) -> list[dict]:
    """Evaluate every alpha of one finished base run, sharing one model load and one evaluator."""
    pending = [j for j in jobs if load_done(j) is None]
    summaries = {j.run_key: load_done(j) for j in jobs if j not in pending}
    if pending:
        selected_path = base.run_dir / "selected.pt"
        if not selected_path.is_file():
            raise FileNotFoundError(f"WiSE-FT needs the finished run's weights at {selected_path}")
        selected = torch.load(selected_path, map_location="cpu", weights_only=False)
        prep, ctx = prepare(base, log, method_name="zeroshot")
        method = prep.method
        method.setup(ctx)
        zs_model = copy.deepcopy(method.model.state_dict())
        zs_head = method.head.state_dict()
        ft_model = selected["state_dict"]
        ft_head = selected["bench_head"]
        rt = base.runtime
        evaluator = Evaluator(prep.task.sets, prep.loaded.eval_transform, rt.get("eval_batch_size", 256),
                              rt.get("workers", 0), prep.device)
        for job in pending:
            alpha = job.extra["alpha"]
            tracker = tracker_factory(job)
            tracker.start(job, job_params(job, prep.task), {**job_tags(job, prep.device), "bench.kind": "wiseft"})
            try:
                head = None if ft_head is None else interpolate(zs_head, ft_head, alpha)
                method.load_state_dict({"model": interpolate(zs_model, ft_model, alpha), "head": head})
                method.train(False)
                metrics = evaluator(method.classifier())
                summary = {"sel/epoch": 0, **{f"sel/{k}": v for k, v in metrics.items()}}
                tracker.log_metrics({**metrics, "alpha": alpha}, step=0)
                tracker.log_metrics(summary, step=0)
                tracker.finish("FINISHED")
            except BaseException:
                tracker.finish("FAILED")
                raise
            summaries[job.run_key] = {**summary, "run_key": job.run_key, "run_id": tracker.run_id}
            write_json_atomic(summaries[job.run_key], job.run_dir / "done.json")
            log(f"[{job.display_name}] {prep.task.val.key} {metrics[prep.task.val.key]:.4f}"
                + (f" ood/avg {metrics['ood/avg']:.4f}" if "ood/avg" in metrics else ""))
    return [summaries[j.run_key] for j in jobs]
