"""Ray Train: one job over N workers (one GPU each, or N CPU processes), launched from inside a Tune trial.

`run_torch_trial` runs `entry` ("module:function") as a Ray Train `TorchTrainer` with `num_workers` workers
(Ray places them through a placement group built from the ScalingConfig and sets up the torch process group
first: gloo on CPU, NCCL on GPU); each worker calls `function(payload, report)`. Rank 0 alone calls
`report(metrics, epoch) -> bool`; the metrics reach the enclosing Tune trial through the trial's own
reporter (so ASHA sees them as from a one-process trial), and its answer (True: Tune stops the trial) comes
back to rank 0, whose code then broadcasts it to the other ranks, closes its MLflow run KILLED and returns.

What Ray 2.60 does (Train V2 is the default; verified in tests/sweeps/test_ray_train.py and by hand):
- A `TorchTrainer` is no Tune trainable any more (`Tuner(trainer)` fails: "Improper 'run' - not string nor
  trainable"); it has to run inside a function trainable, as here.
- Ray's bridge, `ray.tune.integration.ray_train.TuneReportCallback`, carries metrics one way only, and only
  from `ray.train.report`, which in V2 every rank must call (the controller waits for all of them). When
  Tune stops such a trial it calls `session.finish(timeout=0)` and tears the trial actor down; the
  controller and the workers, owned by it, are killed mid-epoch: rank 0 never learns that it was stopped.
  So bench does not use it: a small async actor (`_Channel`, no resources) carries rank 0's report to the
  trial's thread, which calls the reporter (`tune.report` inside; the SystemExit that Tune raises there
  becomes True) and sends the answer back to rank 0, which waits for it, as `tune.report` would.
- Stopping is graceful while the trial's process lives on: Tune reuses the actor for the next trial
  (reuse_actors=True; `reset_config` waits 2 s for the trial's thread, then Tune ends the process anyway).
  When Tune ends the trial's process right after stopping it (its last trials, or no reuse), the process
  exits before the answer reaches rank 0, and the controller and workers, which it owns, are killed with
  it: rank 0 then cannot close its run, and the executor's driver-side StatusCallback (end_unfinished
  KILLED, mark_stopped) does, as for a one-process trial killed before it could write.
- A worker that raises (or dies) makes the controller abort the group; `trainer.fit()` raises
  `ray.train.TrainingFailedError` (no retries: FailureConfig(max_failures=0), bench resumes from its own
  checkpoint files when the job runs again) and so does `run_torch_trial`.

The Tune trial itself only holds the driver (1 CPU or less, no GPU): the workers' resources are reserved by
Ray Train's own placement group, so the executor should give such a trial `{"cpu": 1, "gpu": 0}` and cap
`max_concurrent_trials` so that waiting drivers do not hold every CPU.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
import os
import threading

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")  # workers use this interpreter, never `uv run`

import ray  # noqa: E402

log = logging.getLogger(__name__)

# Environment variables the workers inherit from the trial (on other nodes they would not have them).
PASS_ENV = ("BENCH_", "HF_", "TQDM_", "TORCH_HOME", "CUBLAS_", "MLFLOW_", "NCCL_", "GLOO_", "TORCH_NCCL_",
            "TORCH_DISTRIBUTED_", "PYTHONHASHSEED", "NO_COLOR")
# Lines that Ray 2.60 prints on the driver's console for every Ray Train run, meaning nothing to bench: the
# PlacementGroupCleaner (a detached actor of Train V2) polls the State API, which needs the dashboard
# (`ray[default]`; bench starts Ray with include_dashboard=False), and warns every second that it failed;
# the PreemptionWatcher's constructor warning is logged by the C++ core of each run's controller.
NOISE = ("State API may be temporarily unavailable", "has constructor arguments in the object store")


def worker_env(extra: dict | None = None) -> dict:
    """The env vars the workers get: this process's PASS_ENV ones, then `extra`."""
    env = {k: v for k, v in os.environ.items() if k.startswith(PASS_ENV)}
    env.setdefault("NO_COLOR", "1")  # worker output goes through Ray's log pipe, never a tty
    env.update({k: str(v) for k, v in (extra or {}).items()})
    return env


@ray.remote(num_cpus=0, max_concurrency=4)
class _Channel:
    """Rank 0 -> trial: one report at a time; trial -> rank 0: the answer (bool, or an exception to raise)."""

    def __init__(self):
        self._reports: asyncio.Queue | None = None
        self._answers: asyncio.Queue | None = None

    def _queues(self):
        if self._reports is None:
            self._reports, self._answers = asyncio.Queue(), asyncio.Queue()
        return self._reports, self._answers

    async def report(self, metrics: dict, epoch: int):
        reports, answers = self._queues()
        await reports.put((metrics, epoch))
        return await answers.get()

    async def next(self, timeout: float):
        reports, _ = self._queues()
        try:
            return await asyncio.wait_for(reports.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def answer(self, value):
        await self._queues()[1].put(value)


def _resolve(entry: str):
    module, _, name = entry.partition(":")
    if not module or not name:
        raise ValueError(f"entry must be 'module:function', not {entry!r}")
    return getattr(importlib.import_module(module), name)


def _worker(config: dict) -> None:
    """Ray Train's train_loop_per_worker: runs on every rank, process group already up."""
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    channel = config["channel"]

    def report(metrics: dict, epoch: int) -> bool:
        if rank != 0:
            raise RuntimeError("report() is rank 0's alone; the other ranks learn the answer from rank 0")
        answer = ray.get(channel.report.remote(dict(metrics), int(epoch)))
        if isinstance(answer, BaseException):
            raise answer
        return bool(answer)

    _resolve(config["entry"])(config["payload"], report)


class ReporterFailed(RuntimeError):
    """Raised in rank 0's report() when the trial's reporter raised (the trial then raises the original)."""


def quiet_driver_output() -> None:
    """In the Ray driver (the process that called ray.init, e.g. `bench sweep`): no ANSI colours in the
    worker-log prefixes unless stdout is a terminal, and none of Ray Train's NOISE lines. Idempotent; uses
    Ray's private log dispatcher, and does nothing where that is not there."""
    import sys

    if not sys.stdout.isatty():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # read on every printed line
    try:
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher
    except ImportError:
        return
    with dispatcher._lock:
        handlers = []
        for name, handler in dispatcher.handlers:
            if name == "ray_print_logs" and not getattr(handler, "_bench_quiet", False):
                handler = _filtered(handler)
            handlers.append((name, handler))
        dispatcher.handlers = handlers


def _filtered(handler):
    def emit(data):
        lines = [line for line in data.get("lines", ()) if not any(n in line for n in NOISE)]
        if lines:
            handler({**data, "lines": lines})

    emit._bench_quiet = True
    return emit


def run_torch_trial(entry: str, payload: dict, num_workers: int, use_gpu: bool, resources_per_worker: dict | None,
                    reporter, storage_path: str, name: str, *, env: dict | None = None,
                    backend: str | None = None, timeout_s: int = 1800, poll_s: float = 0.5) -> None:
    """Run `entry(payload, report)` on `num_workers` Ray Train workers and wait for them; to be called from
    inside a Tune function trial (or any Ray driver). `reporter.report(metrics, epoch) -> bool` is called
    in this thread for each report of rank 0, and its answer returned to rank 0. Raises when a worker
    raised or died (ray.train.TrainingFailedError), or what the reporter raised (rank 0 gets ReporterFailed).

    resources_per_worker: Ray resources of each worker (Ray Train's default: {"CPU": 1}, {"GPU": 1} with use_gpu);
    env: extra env vars for the workers, on top of this process's PASS_ENV ones (BENCH_HOME,
    MLFLOW_TRACKING_URI...); backend: the torch backend, default nccl with use_gpu and gloo without;
    timeout_s: of the process group's collectives."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    try:
        from ray.train import LoggingConfig
        logging_config = {"logging_config": LoggingConfig(log_level="WARNING")}
    except ImportError:  # older Ray
        logging_config = {}
    _resolve(entry)  # fail here, not on every worker, on a typo
    os.makedirs(storage_path, exist_ok=True)
    channel = _Channel.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        ray.get_runtime_context().get_node_id(), soft=True)).remote()
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"entry": entry, "payload": payload, "channel": channel},
        torch_config=TorchConfig(backend=backend or ("nccl" if use_gpu else "gloo"), timeout_s=timeout_s),
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                     resources_per_worker=resources_per_worker or None),
        run_config=RunConfig(name=name, storage_path=str(storage_path),
                             failure_config=FailureConfig(max_failures=0),
                             checkpoint_config=CheckpointConfig(num_to_keep=1),
                             worker_runtime_env={"env_vars": worker_env(env)},
                             **logging_config),
    )
    outcome: dict = {}

    def fit():
        try:
            outcome["result"] = trainer.fit()
        except BaseException as exc:  # noqa: BLE001 - handed to the trial's thread
            outcome["error"] = exc

    thread = threading.Thread(target=fit, name=f"ray-train-{name}", daemon=True)
    thread.start()
    reporter_error: BaseException | None = None
    try:
        while True:
            item = ray.get(channel.next.remote(poll_s))
            if item is None:
                if not thread.is_alive():
                    break
                continue
            metrics, epoch = item
            if reporter_error is not None:  # rank 0 reports again after being told to raise: stop it
                ray.get(channel.answer.remote(True))
                continue
            try:
                answer = bool(reporter.report(metrics, epoch))
            except BaseException as exc:  # noqa: BLE001 - rank 0 raises it too, the job fails cleanly
                reporter_error = exc
                answer = ReporterFailed(f"the trial's reporter raised {type(exc).__name__}: {exc}")
            # Synchronously: once Tune has stopped the trial it may end this process at any moment.
            ray.get(channel.answer.remote(answer))
        thread.join()
    finally:
        ray.kill(channel)
    if reporter_error is not None:
        raise reporter_error
    if "error" in outcome:
        raise outcome["error"]
    result = outcome.get("result")
    if result is not None and getattr(result, "error", None) is not None:
        raise result.error


class _RayReporter:
    """Rank 0's executor reporter under Ray Train: its answer is Tune's (True: the trial was stopped)."""

    def __init__(self, report):
        self._report = report

    def report(self, metrics: dict, epoch: int) -> bool:
        return bool(self._report(metrics, epoch))


def ray_worker(payload: dict, report) -> None:
    """The entry each Ray Train worker runs (`bench.sweeps.ray_train:ray_worker`), the process group already up."""
    import ray.train
    import ray.train.torch

    from bench.launch.processes import configure_logging, run_rank
    from bench.runtime.distributed import init_process_group
    from bench.tracking.runs import MlflowTracker

    job = payload["job"]
    device = ray.train.torch.get_device()
    if device.type == "cuda":  # this worker's GPU among those Ray made visible on its node
        os.environ["LOCAL_RANK"] = str(device.index or 0)
    rank = init_process_group(device.type)
    configure_logging(rank.rank)
    tracker = MlflowTracker(job.experiment, payload["uri"]) if rank.main else None
    run_rank(job, tracker, _RayReporter(report) if rank.main else None, wait=True)
