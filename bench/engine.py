"""One function trains and evaluates a job: `train_one(job, tracker, reporter)`. Executors only decide
where it runs; this module never imports Ray.

Per epoch: train (AdamW, per-step warmup + cosine, optional grad clipping), evaluate on ID validation,
ID test and OOD sets, update model selection, checkpoint atomically. The global RNG and the shuffle
generator are re-seeded from (seed, epoch) at every epoch start, so a job resumed from its last
checkpoint replays exactly the epochs an uninterrupted job would have run.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

import torch

from bench.errors import BenchError
from bench.evaluate import Evaluator, FeatureCache, make_loader
from bench.fsutil import torch_save_atomic, write_json_atomic
from bench.heads import tokenize_prompts
from bench.jobs import Job, weights_identity
from bench.metrics import get_metric
from bench.models import LoadedModel, load_model
from bench.runtime import derive_seed, environment_tags, pick_device, seed_everything
from bench.schedule import cosine_lr
from bench.selection import Selection
from bench.tasks import Task, build_task
from bench.tracking import NullTracker, git_sha


class NonFiniteLoss(BenchError):
    pass


class NullReporter:
    """Executors pass a reporter; returning True from report() asks the job to stop early."""

    def report(self, metrics: dict, epoch: int) -> bool:
        return False


@dataclass
class Prepared:
    job: Job
    loaded: LoadedModel
    task: Task
    device: torch.device
    method: object


def prepare(job: Job, log=print, method_name: str | None = None):
    """Model, task data, method instance and its context for a job (shared with WiSE-FT)."""
    from bench.methods import METHODS
    from bench.methods.base import MethodContext

    seed_everything(derive_seed(job.seed, "setup"))
    device = pick_device(job.runtime.get("device"))
    loaded = load_model(job.model["arch"], job.model.get("pretrained"), device=str(device))
    task = build_task(job.task, job.task_spec, seed=job.seed)
    method = METHODS.get(method_name or job.method)()
    runtime = job.runtime
    cache = FeatureCache(_cache_dir(), f"{job.model['arch']}:{weights_identity(loaded.pretrained)}", loaded.model,
                         loaded.eval_transform, runtime.get("eval_batch_size", 256), runtime.get("workers", 0), device)
    val = task.val
    sources = {"train": (task.source, task.train_split), "val": (val.source, val.split)}
    ctx = MethodContext(
        model=loaded.model, tokenizer=loaded.tokenizer, classnames=task.classnames, templates=task.templates,
        prompt_tokens=tokenize_prompts(loaded.tokenizer, task.classnames, task.templates),
        hparams=job.hparams, device=device, features=lambda role: cache(*sources[role]),
        score=lambda logits, y: get_metric(val.metric)(val.source.project_logits(logits), y), log=log,
    )
    return Prepared(job, loaded, task, device, method), ctx


def _cache_dir():
    from bench.config import bench_home

    return bench_home() / "cache" / "features"


def job_params(job: Job, task: Task) -> dict:
    params = {f"hp.{k}": v for k, v in job.hparams.items()}
    params.update({"task": job.task, "method": job.method, "seed": job.seed, "model.arch": job.model["arch"],
                   "model.pretrained": job.model.get("pretrained"), "suite": job.suite})
    params.update({f"data.{k}": v for k, v in task.source.describe().items()})
    params.update({f"extra.{k}": v for k, v in job.extra.items()})
    return params


def job_tags(job: Job, device) -> dict:
    from bench import __version__

    tags = {"bench.run_key": job.run_key, "bench.method": job.method, "bench.task": job.task,
            "bench.seed": job.seed, "bench.model": job.model["arch"], "bench.suite": job.suite,
            "bench.kind": "job", "bench.git_sha": git_sha(), "bench.version": __version__}
    tags.update({f"bench.{k}": v for k, v in job.extra.items()})
    tags.update(environment_tags(device))
    tags.update(job.tags)  # e.g. mlflow.parentRunId and bench.sweep_key from a sweep executor
    return tags


def load_done(job: Job) -> dict | None:
    path = job.run_dir / "done.json"
    return json.loads(path.read_text()) if path.is_file() else None


def train_one(job: Job, tracker=None, reporter=None, log=print) -> dict:
    """Train and evaluate one job; returns its summary (selected epoch's metrics under `sel/`)."""
    done = load_done(job)
    if done is not None:
        log(f"[{job.display_name}] already done ({job.run_key}); reusing its results")
        return done
    tracker = tracker or NullTracker()
    reporter = reporter or NullReporter()
    ckpt_path = job.run_dir / "checkpoint.pt"
    resume = torch.load(ckpt_path, map_location="cpu", weights_only=False) if ckpt_path.is_file() else None

    prep, ctx = prepare(job, log)
    run_id = (resume or {}).get("run_id") or (tracker.find_unfinished(job.run_key) if hasattr(tracker, "find_unfinished") else None)
    tracker.start(job, job_params(job, prep.task), job_tags(job, prep.device), resume_run_id=run_id)
    try:
        if run_id is None:
            import yaml

            tracker.log_text(yaml.safe_dump({"job": job.semantic(), "runtime": job.runtime}, sort_keys=True), "config.yaml")
        summary = _run(prep, ctx, tracker, reporter, resume, ckpt_path, log)
    except KeyboardInterrupt:
        tracker.finish("KILLED")
        raise
    except BaseException:
        tracker.finish("FAILED")
        raise
    return summary


def _run(prep: Prepared, ctx, tracker, reporter, resume, ckpt_path, log) -> dict:
    job, method, hp, device = prep.job, prep.method, prep.job.hparams, prep.device
    method.setup(ctx)
    runtime = job.runtime
    evaluator = Evaluator(prep.task.sets, prep.loaded.eval_transform, runtime.get("eval_batch_size", 256),
                          runtime.get("workers", 0), device)
    val_key = prep.task.val.key
    selection = Selection(hp.get("selection", "best"), val_key)
    epochs = hp["epochs"] if method.trains else 0
    history: list[dict] = []
    start = 0

    if not method.trains:
        _evaluate_untrained(prep, evaluator, selection, history, tracker)
    else:
        train_set = prep.task.source.split(prep.task.train_split, prep.loaded.train_transform)
        generator = torch.Generator()
        loader = make_loader(train_set, hp["batch_size"], runtime.get("workers", 0), shuffle=True, generator=generator)
        params = [p for p in method.trainable_parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=hp["lr"], weight_decay=hp["wd"])
        total_steps = epochs * len(loader)
        if resume is not None:
            method.load_state_dict(resume["method"])
            optimizer.load_state_dict(resume["optimizer"])
            selection.load(resume["selection"])
            history, start = resume["history"], resume["epoch"]
            log(f"[{job.display_name}] resuming after epoch {start}/{epochs}")
        if start == 0 and hp.get("selection") == "min_val_loss":
            # The zero-shot (or LP-initialised) model before any step is a candidate (few-shot protocol).
            _evaluate_untrained(prep, evaluator, selection, history, tracker)
        for epoch in range(start, epochs):
            epoch_seed = derive_seed(job.seed, "epoch", epoch)
            seed_everything(epoch_seed)
            generator.manual_seed(epoch_seed)
            train_stats = _train_epoch(prep, loader, optimizer, params, epoch, epochs, total_steps, log)
            method.train(False)
            t0 = time.time()
            metrics = {**evaluator(method.classifier()), **train_stats}
            metrics["time/eval_s"] = time.time() - t0
            if selection.update(epoch + 1, metrics):
                _save_selected(prep, epoch + 1)
            history.append({"epoch": epoch + 1, **metrics})
            torch_save_atomic({"epoch": epoch + 1, "method": method.state_dict(), "optimizer": optimizer.state_dict(),
                               "selection": selection.state(), "history": history, "run_id": tracker.run_id}, ckpt_path)
            tracker.log_metrics(metrics, step=epoch + 1)
            log(f"[{job.display_name}] epoch {epoch + 1}/{epochs} loss {train_stats['train/loss']:.4f} "
                f"{val_key} {metrics[val_key]:.4f}" + (f" ood/avg {metrics['ood/avg']:.4f}" if "ood/avg" in metrics else ""))
            last = epoch + 1 == epochs
            if last:
                break  # finish the run before the final report: a tracker must never outlive a stopped trial
            if reporter.report(metrics, epoch + 1):
                log(f"[{job.display_name}] stopped early by the executor after epoch {epoch + 1}")
                tracker.finish("KILLED")
                return selection.summary()

    summary = selection.summary()
    summary["sel/epochs_run"] = len(history)
    tracker.log_metrics(summary, step=len(history))
    tracker.log_text("\n".join(json.dumps(h, sort_keys=True) for h in history), "metrics.jsonl")
    tracker.finish("FINISHED")
    write_json_atomic({**summary, "run_key": job.run_key, "run_id": tracker.run_id}, job.run_dir / "done.json")
    if ckpt_path.is_file():
        ckpt_path.unlink()  # optimizer state is no longer needed; selected.pt keeps the chosen weights
    reporter.report({**(history[-1] if history else {}), "done": True}, max(1, len(history)))
    return {**summary, "run_key": job.run_key, "run_id": tracker.run_id}


def _evaluate_untrained(prep: Prepared, evaluator, selection, history: list, tracker) -> None:
    """Epoch 0: the model as set up (zero-shot, probe), evaluated and offered to selection."""
    prep.method.train(False)
    metrics = evaluator(prep.method.classifier())
    selection.update(0, metrics)
    _save_selected(prep, 0)
    history.append({"epoch": 0, **metrics})
    tracker.log_metrics(metrics, step=0)


def _train_epoch(prep: Prepared, loader, optimizer, params, epoch, epochs, total_steps, log) -> dict:
    from tqdm import tqdm

    method, hp, device = prep.method, prep.job.hparams, prep.device
    method.train(True)
    steps = len(loader)
    loss_sum, seen, t0 = 0.0, 0, time.time()
    bar = tqdm(loader, desc=f"{prep.job.display_name} {epoch + 1}/{epochs}", leave=False, file=sys.stderr,
               disable=None, dynamic_ncols=True)
    lr = hp["lr"]
    for i, batch in enumerate(bar):
        images, labels = batch[0], batch[1]  # WILDS batches also carry metadata
        step = epoch * steps + i
        lr = cosine_lr(step, hp["lr"], hp["warmup"], total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        images, labels = images.to(device, non_blocking=True), torch.as_tensor(labels).to(device)
        out = method.training_step(images, labels)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"Training loss became {loss.item()} at epoch {epoch + 1}, step {i} (lr {lr:.3g}). "
                                "Lower the learning rate (--set lr=...) or clip gradients (--set grad_clip=1.0).")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if hp["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(params, hp["grad_clip"])
        optimizer.step()
        method.after_optimizer_step()
        value = loss.item()  # one device sync per step, shared by the running mean and the progress bar
        loss_sum += value * len(labels)
        seen += len(labels)
        bar.set_postfix(loss=f"{value:.4f}", img_s=f"{seen / max(time.time() - t0, 1e-9):.1f}")
    elapsed = time.time() - t0
    return {"train/loss": loss_sum / max(seen, 1), "lr": lr, "time/train_s": elapsed,
            "train/images_per_s": seen / max(elapsed, 1e-9)}


def _save_selected(prep: Prepared, epoch: int) -> None:
    """The selected weights, in a form open_clip loads back (`--pretrained PATH`), plus the head."""
    state = prep.method.state_dict()
    torch_save_atomic({"state_dict": {k: v.detach().cpu() for k, v in state["model"].items()},
                       "bench_head": None if state["head"] is None else {k: v.detach().cpu() for k, v in state["head"].items()},
                       "arch": prep.job.model["arch"], "epoch": epoch, "method": prep.job.method},
                      prep.job.run_dir / "selected.pt")
