"""The training body of a job: `TrainBody`, which the job lifecycle runs (`train_one(job, tracker, reporter)` in
bench/jobs/lifecycle.py). Executors only decide where it runs; this module never imports Ray.

Per epoch: train (AdamW, per-step warmup + cosine, optional grad clipping), evaluate on ID validation,
ID test and OOD sets, update model selection, checkpoint atomically. The global RNG and the shuffle
generator are re-seeded from (seed, epoch) at every epoch start, so a job resumed from its last
checkpoint replays exactly the epochs an uninterrupted job would have run.
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass

import torch

from bench.errors import BenchError
from torch.utils.data import RandomSampler

from bench.datasets.seeded import EpochIndices, SeededSamples
from bench.train.evaluate import Evaluator, FeatureCache, make_loader
from bench.model.heads import tokenize_prompts
from bench.model.weights_file import weights_identity
from bench.spec.job import Job
from bench.model.losses import pretraining_objective
from bench.train.body import Context, Result
from bench.train.metrics import get_metric
from bench.runtime.distributed import (average_gradients, barrier, broadcast_parameters, current, device_for, from_main,
                                       local_workers, sum_over_ranks, sync_batchnorm_stats)
from bench.train.precision import Precision, apply_step, backward, compile_towers, enable_tf32, make_adamw, resolve_precision
from bench.model.factory import LoadedModel, checkpoint_metadata, load_model
from bench.runtime.host import derive_seed, environment_tags, pick_device, seed_everything
from bench.train.schedule import cosine_lr
from bench.train.selection import Selection
from bench.spec.tasks import Task, build_task
from bench.runtime.host import git_sha

log = logging.getLogger(__name__)


class NonFiniteLoss(BenchError):
    pass


@dataclass
class Prepared:
    job: Job
    loaded: LoadedModel
    task: Task
    device: torch.device
    method: object
    precision: Precision
    features: FeatureCache  # frozen pretrained image features, cached on disk


def prepare(job: Job, method_name: str | None = None):
    """Model, task data, method instance and its context for a job (shared with WiSE-FT)."""
    from bench.methods import METHODS
    from bench.methods.base import MethodContext

    seed_everything(derive_seed(job.seed, "setup"))
    rank = current()
    device = device_for(rank, job.runtime.get("device")) if rank.distributed else pick_device(job.runtime.get("device"))
    precision = resolve_precision(job.runtime.get("precision"), device)
    enable_tf32(device)
    loaded = load_model(job.model["arch"], job.model.get("pretrained"), device=str(device))
    check_micro_batch(loaded.model, int(job.runtime.get("micro_batch") or 0))
    if job.runtime.get("compile"):
        compile_towers(loaded.model)
    task = build_task(job.task, job.task_spec, seed=job.seed)
    method = METHODS.get(method_name or job.method)()
    runtime = job.runtime
    cache = FeatureCache(_cache_dir(), f"{job.model['arch']}:{weights_identity(loaded.pretrained)}", loaded.model,
                         loaded.eval_transform, runtime.get("eval_batch_size", 256), local_workers(runtime.get("workers", 0)),
                         device)
    val = task.val
    sources = {"train": (task.source, task.train_split), "val": (val.source, val.split)}
    ctx = MethodContext(
        model=loaded.model, tokenizer=loaded.tokenizer, classnames=task.classnames, templates=task.templates,
        prompt_tokens=tokenize_prompts(loaded.tokenizer, task.classnames, task.templates),
        hparams=job.hparams, device=device, features=lambda role: cache(*sources[role]),
        score=lambda logits, y: get_metric(val.metric)(val.source.project_logits(logits), y), log=log.info,
    )
    return Prepared(job, loaded, task, device, method, precision, cache), ctx


def check_micro_batch(model, micro_batch: int) -> None:
    """`--micro-batch` runs each chunk through the towers on its own (twice with gradient caching): a BatchNorm
    layer would normalise with chunk statistics instead of the batch's and update its running statistics once
    per pass, so the result would depend on the chunk size. Refused for such models (the RN configs)."""
    if not micro_batch:
        return
    norms = [name for name, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if norms:
        raise BenchError(f"--micro-batch cannot run this model: it has BatchNorm layers ({norms[0]}, ... "
                         f"{len(norms)} in all), whose statistics would come from each chunk rather than the whole "
                         "batch and be updated once per pass. Drop --micro-batch (use a smaller batch_size or more "
                         "GPUs), or use a ViT model.")


def _cache_dir():
    from bench.config import bench_home

    return bench_home() / "cache" / "features"


def job_params(job: Job, task: Task, prep: Prepared | None = None) -> dict:
    params = {f"hp.{k}": v for k, v in job.hparams.items()}
    if prep is not None:  # the model as actually built (activation, image size, weights) and the precision
        params.update({f"built.{k}": v for k, v in getattr(prep.loaded, "built", {}).items()})
        params.update({"runtime.precision": prep.precision.name, "runtime.compile": bool(job.runtime.get("compile")),
                       "runtime.processes": current().world, "runtime.micro_batch": int(job.runtime.get("micro_batch") or 0)})
    params.update({"task": job.task, "method": job.method, "seed": job.seed, "model.arch": job.model["arch"],
                   "model.pretrained": job.model.get("pretrained"), "suite": job.suite})
    params.update({f"data.{k}": v for k, v in task.source.describe().items()})
    params.update({f"extra.{k}": v for k, v in job.extra.items()})
    return params


def job_tags(job: Job, device) -> dict:
    from bench import __version__
    from bench.train.describe import describe

    tags = {"bench.run_key": job.run_key, "bench.method": job.method, "bench.task": job.task,
            "bench.seed": job.seed, "bench.model": job.model["arch"], "bench.suite": job.suite,
            "bench.kind": "job", "bench.git_sha": git_sha(), "bench.version": __version__}
    tags.update({f"bench.{k}": v for k, v in job.extra.items()})
    tags.update(environment_tags(device))
    tags["mlflow.note.content"] = describe(job)
    tags.update(job.tags)  # e.g. mlflow.parentRunId and bench.sweep_key from a sweep executor
    return tags


class TrainBody:
    """The epoch loop of one job, run by the job lifecycle (bench/jobs/lifecycle.py)."""

    kind = "job"
    resumable = True

    def __init__(self, job: Job):
        self.job = job
        self.started = False  # execute() began: in a multi-process job, the other ranks were told to start

    def prepare(self) -> tuple[dict, dict]:
        from bench.runtime.disk import check_free_disk, checkpoint_need_bytes

        self.prep, self.ctx = prepare(self.job)
        self.prec = self.prep.precision
        if self.prep.method.trains and current().main:
            check_free_disk(self.job.run_dir, checkpoint_need_bytes(self.prep.loaded.model))
        return job_params(self.job, self.prep.task, self.prep), job_tags(self.job, self.prep.device)

    def execute(self, jc: Context) -> Result:
        prep, ctx = self.prep, self.ctx
        job, method, hp, device = prep.job, prep.method, prep.job.hparams, prep.device
        rank = current()
        self.started = True
        if rank.distributed and jc.writer:  # the other ranks wait in bench.launch.processes.run_rank for this
            from_main({"resume": str(jc.resume_path) if jc.resume_path else None})
        _setup_ranked(method, ctx, rank)
        jc.set_tags(method.tags())  # what the method decided at setup (FLYP's objective)
        runtime = job.runtime
        evaluator = Evaluator(prep.task.sets, prep.loaded.eval_transform, runtime.get("eval_batch_size", 256),
                              local_workers(runtime.get("workers", 0)), device, context=self.prec.inference,
                              objective=pretraining_objective(prep.loaded.model), pad=bool(runtime.get("compile")))
        val_key = prep.task.val.key
        selection = Selection(hp.get("selection", "best"), val_key)
        if not method.trains:
            history = [_evaluate_untrained(prep, evaluator, selection, jc)]
            return Result({**selection.summary(), "sel/epochs_run": 1}, history)

        epochs, resume = hp["epochs"], jc.resume
        train = TrainData(prep.task.source.split(prep.task.train_split, prep.loaded.train_transform), job.seed,
                          hp["batch_size"], runtime.get("workers", 0), rank, device,
                          drop_last=bool(runtime.get("compile")))  # compiled towers: one batch shape, no recompile
        loader = train.loader
        params = [p for p in method.trainable_parameters() if p.requires_grad]
        groups = method.optimizer_groups(hp["wd"]) or params  # per-group decay (L2-SP spares the backbone)
        optimizer = make_adamw(groups, lr=hp["lr"], weight_decay=hp["wd"], device=device)
        scaler = self.prec.make_scaler()
        total_steps = epochs * len(loader)
        history: list[dict] = []
        start = 0
        if resume is not None:
            method.load_state_dict(resume["method"])
            optimizer.load_state_dict(resume["optimizer"])
            if scaler is not None and resume.get("scaler"):
                scaler.load_state_dict(resume["scaler"])
            selection.load(resume["selection"])
            history, start = resume["history"], resume["epoch"]
            for h in history:  # points a kill kept from MLflow (logging is idempotent per metric and step)
                jc.log_metrics({k: v for k, v in h.items() if k != "epoch"}, step=h["epoch"])
            log.info("[%s] resuming after epoch %d/%d", job.display_name, start, epochs)
        if start == 0 and hp.get("selection") == "min_val_loss":
            # The zero-shot (or LP-initialised) model before any step is a candidate (few-shot protocol).
            history.append(_evaluate_untrained(prep, evaluator, selection, jc, staged=True))
        for epoch in range(start, epochs):
            epoch_seed = derive_seed(job.seed, "epoch", epoch)
            seed_everything(epoch_seed)  # alike on every rank: FLYP's template draws stay in step (see sample_prompts)
            train.set_epoch(epoch, epoch_seed)
            train_stats = _train_epoch(prep, loader, optimizer, params, self.prec, scaler, epoch, epochs, total_steps,
                                       on_log=jc.log_metrics)
            jc.steps += train_stats.pop("steps")  # this attempt's optimizer steps, recorded by the lifecycle
            method.train(False)
            sync_batchnorm_stats(method.model, method.head)  # one model on every rank for evaluation and checkpoint
            t0 = time.time()
            metrics = {**evaluator(method.classifier()), **train_stats}
            metrics["time/eval_s"] = time.time() - t0
            if selection.update(epoch + 1, metrics) and jc.writer:
                jc.stage_selected(_selected_weights(prep, epoch + 1))
            history.append({"epoch": epoch + 1, **metrics})
            jc.log_metrics(metrics, step=epoch + 1)
            if jc.writer:
                jc.save_checkpoint({"epoch": epoch + 1, "step": (epoch + 1) * len(loader), "method": method.state_dict(),
                                    "optimizer": optimizer.state_dict(), "selection": selection.state(),
                                    "history": history, "scaler": scaler.state_dict() if scaler is not None else None})
            log.info("[%s] epoch %d/%d loss %.4f %s %.4f%s", job.display_name, epoch + 1, epochs,
                     train_stats["train/loss"], val_key, metrics[val_key],
                     f" ood/avg {metrics['ood/avg']:.4f}" if "ood/avg" in metrics else "")
            if epoch + 1 == epochs:
                break  # the lifecycle finishes the run before the final report: a tracker must never outlive a trial
            if from_main(jc.report(metrics, epoch + 1)):  # rank 0's executor decides for every rank
                log.info("[%s] stopped early by the executor after epoch %d", job.display_name, epoch + 1)
                return Result(selection.summary(), history, stopped=True)
        summary = selection.summary()
        summary["sel/epochs_run"] = len(history)
        return Result(summary, history)


def _evaluate_untrained(prep: Prepared, evaluator, selection, jc: Context, staged: bool = False) -> dict:
    """Epoch 0: the model as set up (zero-shot, probe), evaluated and offered to selection."""
    method = prep.method
    method.train(False)
    if method.frozen_image_tower:
        metrics = evaluator.evaluate_features(method.head, prep.features.features)
    else:
        metrics = evaluator(method.classifier())
    if selection.update(0, metrics) and jc.writer:
        weights = _selected_weights(prep, 0)
        jc.stage_selected(weights) if staged else jc.save_selected(weights)
    jc.log_metrics(metrics, step=0)
    return {"epoch": 0, **metrics}


def _setup_ranked(method, ctx, rank) -> None:
    """The method's setup on every rank: rank 0 first (an LP-FT probe's features are then cached on disk for
    the others), then rank 0's trainable weights everywhere, so every rank starts from the same model."""
    if rank.distributed and not rank.main:
        barrier()
    method.setup(ctx)
    if rank.distributed:
        if rank.main:
            barrier()
        broadcast_parameters(method.model)
        if method.head is not None:
            broadcast_parameters(method.head)


class TrainData:
    """The training loader of one rank. Each sample's augmentation is seeded from (job seed, epoch, index)
    (bench.datasets.seeded), so every step sees the same images for any number of workers and processes, and
    workers persist across epochs (they keep no RNG of their own) without breaking exact resume."""

    def __init__(self, dataset, seed: int, batch_size: int, workers: int, rank, device=None, drop_last: bool = False):
        self.samples = SeededSamples(dataset, seed)
        self.generator = torch.Generator()
        self.sampler = train_sampler(self.samples, batch_size, rank)
        order = self.sampler if self.sampler is not None else RandomSampler(self.samples, generator=self.generator)
        self.indices = EpochIndices(order)
        # The loader's own generator: without one, each new loader iterator (every epoch without persistent
        # workers, only the first with them) draws its worker seed from the global RNG, which FLYP's template
        # draws then see shifted. Worker seeds do not matter here (SeededSamples seeds every sample).
        self.loader = make_loader(self.samples, batch_size // rank.world, local_workers(workers, rank), device=device,
                                  sampler=self.indices, drop_last=drop_last, generator=torch.Generator())
        if len(self.loader) == 0:
            raise BenchError(f"No full training batch: {len(self.samples)} training images over batch_size {batch_size}"
                             " with --compile (which drops the short last batch). Lower batch_size (--set batch_size=N).")

    def set_epoch(self, epoch: int, epoch_seed: int) -> None:
        """The epoch's permutation (one process's, each rank its share) and its augmentation seeds."""
        self.indices.epoch = epoch
        if self.sampler is None:
            self.generator.manual_seed(epoch_seed)
        else:
            self.sampler.seed = epoch_seed


def train_sampler(train_set, batch_size: int, rank):
    """In a multi-process job, each rank's share of the global batch: a DistributedSampler over the same
    permutation one process would draw (reseeded per epoch through `seed`), every world-th sample to each
    rank, the remainder of len % world dropped so that every rank takes the same number of steps of the same
    size (each sample is seen at most once per epoch). None in one process (the loader shuffles)."""
    if not rank.distributed:
        return None
    if batch_size % rank.world:
        raise BenchError(f"batch_size {batch_size} is the global batch and must divide evenly over {rank.world} "
                         f"processes: use a multiple of {rank.world} (e.g. --set batch_size="
                         f"{max(rank.world, batch_size - batch_size % rank.world)}).")
    from torch.utils.data.distributed import DistributedSampler

    return DistributedSampler(train_set, num_replicas=rank.world, rank=rank.rank, shuffle=True, seed=0, drop_last=True)


LOG_EVERY = 50  # steps between host reads of the device-side loss sums (progress bar, divergence check)
DEFAULT_LOG_EVERY_STEPS = 10  # steps between per-step MLflow points (step/loss, step/lr, step/temperature)


def _train_epoch(prep: Prepared, loader, optimizer, params, prec, scaler, epoch, epochs, total_steps,
                 on_log=None) -> dict:
    from tqdm import tqdm

    prep.method.train(True)
    bar = tqdm(loader, desc=f"{prep.job.display_name} {epoch + 1}/{epochs}", leave=False, file=sys.stderr,
               disable=None if current().main else True, dynamic_ncols=True)  # one bar per job, rank 0's
    t0 = time.time()
    stats = run_steps(prep.method, bar, optimizer, params, prep.job.hparams, prec, scaler, prep.device,
                      first_step=epoch * len(loader), total_steps=total_steps, bar=bar, epoch=epoch,
                      on_log=on_log, log_every=prep.job.runtime.get("log_every", DEFAULT_LOG_EVERY_STEPS),
                      micro_batch=int(prep.job.runtime.get("micro_batch") or 0))
    elapsed = time.time() - t0
    seen = stats["seen"]
    return {"train/loss": stats["loss"], "lr": stats["lr"], "time/train_s": elapsed,
            "train/images_per_s": seen / max(elapsed, 1e-9), "train/skipped_steps": stats["skipped"], "steps": stats["steps"]}


def run_steps(method, batches, optimizer, params, hp: dict, prec, scaler, device, first_step: int, total_steps: int,
              bar=None, epoch: int = 0, on_log=None, log_every: int = DEFAULT_LOG_EVERY_STEPS,
              micro_batch: int = 0) -> dict:
    """The engine's inner loop (also timed by `bench perf`): per-step schedule, the method's step under
    autocast, a sync-free optimizer step (bench/train/precision.py), and the loss summed on the device; the host
    reads the sums every LOG_EVERY steps and at the end, where a non-finite loss stops the job. On CPU the
    check runs every step: there a read costs nothing and the bad step is never applied.
    `micro_batch` (runtime, not a hyperparameter: the gradients do not change) caps the images per forward
    pass: gradient caching for contrastive methods, accumulation for the others (Method.backward_step).
    With `on_log(metrics, step)`, every `log_every`-th global step logs the mean loss since the last point, the
    learning rate and (where it trains) the temperature: the only other host reads of device values."""
    on_cpu = torch.device(device).type == "cpu"
    def step_backward(loss):
        backward(loss, scaler)

    window = _StepWindow(method, device) if on_log is not None else None
    loss_sum = torch.zeros((), device=device)
    bad = torch.zeros((), dtype=torch.bool, device=device)
    skipped = torch.zeros((), dtype=torch.long, device=device)
    seen, lr, i = 0, hp["lr"], -1
    for i, batch in enumerate(batches):
        images, labels = batch[0], batch[1]  # WILDS batches also carry metadata
        lr = cosine_lr(first_step + i, hp["lr"], hp["warmup"], total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        images = images.to(device, non_blocking=True)
        labels = torch.as_tensor(labels).to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        loss = method.backward_step(images, labels, micro_batch, step_backward, prec.autocast)
        finite = torch.isfinite(loss)
        if on_cpu:
            _check_finite(torch.isfinite(sum_over_ranks(loss)), loss_sum, seen, epoch, i, lr)
        average_gradients(params)  # a multi-process job: the mean over ranks (the global batch's gradient)
        result = apply_step(optimizer, scaler, hp["grad_clip"], params)
        method.after_optimizer_step()
        loss_sum += loss.detach() * len(labels)
        bad |= ~finite
        skipped += result.skipped if isinstance(result.skipped, torch.Tensor) else int(result.skipped)
        seen += len(labels)
        if window is not None:
            window.add(loss, len(labels))
            if (first_step + i + 1) % log_every == 0:
                on_log(window.read(lr), step=first_step + i + 1)
        if (i + 1) % LOG_EVERY == 0:
            _check_finite(sum_over_ranks(bad.long()) == 0, loss_sum, seen, epoch, i, lr)
            if bar is not None:
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}")
    _check_finite(sum_over_ranks(bad.long()) == 0, loss_sum, seen, epoch, i, lr)
    # Every rank sees the same number of samples (the distributed sampler drops the remainder), so the
    # global mean loss is the sum over ranks over the sum of samples.
    world = current().world
    return {"loss": sum_over_ranks(loss_sum).item() / max(seen * world, 1), "seen": seen * world, "lr": lr,
            "skipped": int(skipped.item()), "steps": i + 1}


class _StepWindow:
    """Loss summed on the device since the last per-step point; read (one sync) only when a point is logged."""

    def __init__(self, method, device):
        self.sum, self.count = torch.zeros((), device=device), 0
        scale = getattr(getattr(method, "model", None), "logit_scale", None)
        self.scale = scale if isinstance(scale, torch.nn.Parameter) and scale.requires_grad else None

    def add(self, loss: torch.Tensor, n: int) -> None:
        self.sum += loss.detach() * n
        self.count += n

    def read(self, lr: float) -> dict:
        total = sum_over_ranks(self.sum)  # every rank reads at the same steps: a collective in a group
        values = total.reshape(1) if self.scale is None else \
            torch.stack([total, (-self.scale.detach()).exp().to(total.dtype)])  # CLIP's logit scale: log(1 / T)
        values = values.tolist()  # one host read per logged point
        point = {"step/loss": values[0] / max(self.count * current().world, 1), "step/lr": lr}
        if self.scale is not None:
            point["step/temperature"] = values[1]
        self.sum.zero_()
        self.count = 0
        return point


def _check_finite(finite: torch.Tensor, loss_sum, seen, epoch: int, step: int, lr: float) -> None:
    if not bool(finite):
        raise NonFiniteLoss(f"Training loss became non-finite at epoch {epoch + 1}, by step {step} (lr {lr:.3g}). "
                            "Lower the learning rate (--set lr=...) or clip gradients (--set grad_clip=1.0).")


def _selected_weights(prep: Prepared, epoch: int) -> dict:
    """The selected weights, in a form open_clip loads back (`--pretrained PATH`), plus the head."""
    state = prep.method.state_dict()
    return {"state_dict": {k: v.detach().cpu() for k, v in state["model"].items()},
            "bench_head": None if state["head"] is None else {k: v.detach().cpu() for k, v in state["head"].items()},
            "epoch": epoch, "method": prep.job.method, **checkpoint_metadata(prep.loaded)}
