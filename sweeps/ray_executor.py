"""The Ray Tune executor: the only module of bench that imports Ray.

Each job is one trial: `tune.with_resources(train_one, {"cpu", "gpu"})` over a grid of run_keys, the jobs
themselves pre-enumerated by bench (so the keys match the local executor's) and shipped once through
`tune.with_parameters`. Checkpoints stay in bench's own job directories (a retry or a later invocation
calls `train_one` again, which resumes); nothing goes through `tune.report` but metrics.

MLflow statuses (Ray 2.60, verified): when Tune stops a trial (ASHA, or max_t), `tune.report` raises
SystemExit in the trial's thread. The reporter turns that into "stop", so the engine finishes the run
KILLED instead of FAILED, and the trial re-raises it after the engine returns; the driver-side callback below covers the cases where the trial's process dies
(SIGKILL, OOM, node loss: FAILED) or is torn down before it could write (KILLED), and marks early-stopped
jobs `stopped` for `bench sweep` reruns.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")  # workers use this interpreter, never `uv run`
# Ray folds worker lines that differ only in numbers ("[repeated 2x across cluster]", in colour): bench's trial
# lines (epoch 1/2 ..., epoch 2/2 ...) are exactly such lines. Read when Ray is imported.
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

import ray  # noqa: E402
from ray import tune  # noqa: E402

from bench.errors import BenchError  # noqa: E402

_log = logging.getLogger("bench")
PASS_ENV = ("BENCH_", "HF_", "TQDM_", "TORCH_HOME", "CUBLAS_", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT")


class _DropRayNoise(logging.Filter):
    """Ray's own start-up lines that say nothing about the sweep (its INFO lines are off: logging_level)."""

    NOISE = ("Token authentication is enabled",)

    def filter(self, record) -> bool:
        return not any(n in record.getMessage() for n in self.NOISE)


def quiet_console() -> None:
    """Ray's console for bench: no colour codes when stdout is not a terminal (piped, a log file), Ray's
    start-up notices off; the trial lines are bench's own (`StatusCallback`, `_trial_logging`)."""
    if not sys.stdout.isatty():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # read per printed line: no colour around "(pid=...)"
    ray_logger = logging.getLogger("ray")
    for target in (ray_logger, *ray_logger.handlers):
        if not any(isinstance(f, _DropRayNoise) for f in target.filters):
            target.addFilter(_DropRayNoise())


AUTH_FAILURE = ("InvalidAuthToken", "Unauthenticated", "AuthenticationError")
# Lines Ray's C++ client writes to the console (fd 2) while it retries a connection: one a second, ~15 of them.
RETRY_NOISE = ("Failed to get cluster ID", "gcs_client.cc", "Unauthenticated: RPC error")


def auth_advice(address: str | None) -> str:
    where = os.environ.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token"
    mode = os.environ.get("RAY_AUTH_MODE")
    return (f"The Ray cluster at {address} uses token authentication and refused this machine's token "
            f"(InvalidAuthToken; RAY_AUTH_MODE is {mode or 'unset'}, token file {where}). Copy the head node's token "
            "here (`scp HEAD:~/.ray/auth_token ~/.ray/auth_token`, or `export RAY_AUTH_TOKEN=...` with the output of "
            "`ray get-auth-token` on the head), `export RAY_AUTH_MODE=token`, and rerun. Worker nodes need the same "
            "before `ray start --address HEAD:PORT` (docs/clusters.md).")


@contextlib.contextmanager
def _ray_stderr():
    """Ray's connection retries go straight to file descriptor 2 from C++: catch them, and show afterwards only
    the lines that are not retry noise. Yields a list that holds the captured text after the block."""
    import tempfile

    said: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield said
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace")
            said.append(text)
            kept = [line for line in text.splitlines() if line.strip() and not any(n in line for n in RETRY_NOISE)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


class _OncePerNode:
    """Each node's log monitor forwards the worker log files under its session directory; nodes that share a
    machine share that directory, so each of them forwards every line (a head and a worker node on one machine
    printed each epoch line twice). With n nodes on one address, a line is shown on its 1st, (n+1)th, ... arrival."""

    def __init__(self, handle, nodes_per_ip: dict):
        self.handle, self.nodes_per_ip, self.seen = handle, nodes_per_ip, {}

    def __call__(self, data):
        n = self.nodes_per_ip.get(data.get("ip"), 1)
        if n > 1 and data.get("lines"):
            kept = []
            for line in data["lines"]:
                key = (data.get("ip"), data.get("pid"), data.get("is_err"), line)
                count = self.seen.get(key, 0) + 1
                self.seen[key] = count % n
                if not self.seen[key]:
                    del self.seen[key]  # every node's copy came
                if count == 1:
                    kept.append(line)
            if not kept:
                return
            data = {**data, "lines": kept}
        self.handle(data)


def _forward_once() -> None:
    from collections import Counter

    from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

    per_ip = Counter(n.get("NodeManagerAddress") for n in ray.nodes() if n.get("Alive"))
    if max(per_ip.values(), default=1) < 2:
        return
    with dispatcher._lock:
        dispatcher.handlers = [(name, _OncePerNode(h, per_ip) if name == "ray_print_logs" and
                                not isinstance(h, _OncePerNode) else h) for name, h in dispatcher.handlers]


def connect(opts) -> tuple[bool, dict]:
    """Join the cluster at opts.address (or start Ray here); returns (started_here, per-trial resources).
    A trial that asks for more than any node has would wait forever: refuse it now."""
    started = False
    quiet_console()
    if not ray.is_initialized():
        failure, here = None, opts.address in (None, "", "local")
        # Joining a cluster starts no process (they would inherit the captured stderr); starting Ray here does.
        with contextlib.nullcontext([""]) if here else _ray_stderr() as captured:
            try:
                if here:
                    ray.init(address="local", num_cpus=opts.num_cpus, include_dashboard=False,
                             logging_level=logging.WARNING)  # a new instance, never a cluster found running here
                else:
                    ray.init(address=opts.address, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError, TimeoutError, ray.exceptions.RayError) as exc:
                failure = exc
        if failure is not None:
            if any(mark in captured[0] + repr(failure) for mark in AUTH_FAILURE):
                raise BenchError(auth_advice(opts.address)) from None
            raise BenchError(f"Cannot connect to the Ray cluster at {opts.address or 'this machine'}: {failure}. "
                             "Start it (`ray start --head`) or omit --address to run Ray on this machine.") from None
        started = True
    _forward_once()
    total = ray.cluster_resources()
    resources = dict(opts.resources or {})
    resources.setdefault("cpu", 1.0)
    resources.setdefault("gpu", 1.0 if total.get("GPU", 0) >= 1 else 0.0)
    for key, name in (("cpu", "CPU"), ("gpu", "GPU")):
        have = max([n.get("Resources", {}).get(name, 0.0) for n in ray.nodes() if n.get("Alive")] or [0.0])
        if resources[key] > have:
            if started:
                ray.shutdown()
            raise BenchError(f"Each trial asks for {resources[key]:g} {name}(s) but the largest node of the Ray cluster has "
                             f"{have:g}; lower --resources (e.g. cpu={max(1, int(have))},gpu={int(total.get('GPU', 0) > 0)}).")
    return started, resources


@contextlib.contextmanager
def session(opts):
    """The launcher's Ray session: join the cluster (or start Ray here) and set the per-trial resources; shut
    down afterwards what was started here."""
    started, opts.resources = connect(opts)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


class _TuneReporter:
    """The engine's reporter under Tune. Tune ends a stopped trial by raising SystemExit(0) in its thread
    from inside `tune.report` (train/_internal/session.py): the reporter turns it into "stop" so that the
    engine closes the run KILLED, and `_trial` raises it again once the engine has returned, so that the
    thread ends the way Tune expects (an actor is then reusable)."""

    stopped = False

    def report(self, metrics: dict, epoch: int) -> bool:
        try:
            tune.report({**metrics, "epoch": epoch})
        except SystemExit:
            self.stopped = True
            return True
        return False


def trial_name(job) -> str:
    """A trial's name in every line it prints: the job's name and its hyperparameter index in the sweep."""
    idx = job.tags.get("bench.hparam_idx")
    return job.display_name if idx is None else f"{job.display_name}-h{idx}"


class _TrialName(logging.Filter):
    """Rewrites the job's name in bench's lines to the trial's (actors are reused: one filter, renamed)."""

    def __init__(self):
        super().__init__()
        self.old = self.new = ""

    def filter(self, record) -> bool:
        if self.old and self.old != self.new:
            text = record.getMessage()
            if self.old in text:
                record.msg, record.args = text.replace(self.old, self.new), None
        return True


_NAMER = _TrialName()


def _trial_logging(job) -> None:
    """bench's own INFO lines from the trial's process, plain, carrying the trial's name (Ray prefixes them
    with the worker's pid when it forwards them to the driver)."""
    from bench.runtime.logs import setup_logging

    setup_logging()
    for handler in logging.getLogger("bench").handlers:  # a handler's filters see the children's records too
        if _NAMER not in handler.filters:
            handler.addFilter(_NAMER)
    _NAMER.old, _NAMER.new = f"[{job.display_name}]", f"[{trial_name(job)}]"


def _trial(config, jobs=None, env=None, workers=None):
    os.environ.update(env)
    from bench.launch.processes import processes
    from bench.jobs.lifecycle import train_one
    from bench.tracking.runs import MlflowTracker

    job = jobs[config["run_key"]]
    _trial_logging(job)
    reporter = _TuneReporter()
    n = processes(job)
    if n > 1:  # one job over n Ray Train workers (their own placement group), this trial only drives them
        import time

        from bench.config import bench_home
        from bench.runtime.distributed import COLLECTIVE_TIMEOUT
        from bench.sweeps.ray_train import run_torch_trial

        run_torch_trial("bench.sweeps.ray_train:ray_worker", {"job": job, "uri": env["MLFLOW_TRACKING_URI"]}, n,
                        use_gpu=workers.get("GPU", 0) > 0, resources_per_worker=workers, reporter=reporter,
                        storage_path=str(bench_home() / "ray_results"),
                        name=f"{job.run_key}-train-{time.strftime('%Y%m%d-%H%M%S')}", env=env,  # one per attempt
                        timeout_s=int(COLLECTIVE_TIMEOUT.total_seconds()))
    else:
        train_one(job, MlflowTracker(job.experiment, env["MLFLOW_TRACKING_URI"]), reporter)
    if reporter.stopped:
        raise SystemExit(0)


class StatusCallback(tune.Callback):
    """Driver side: no run of a trial stays RUNNING, whatever happened to the trial's process."""

    def __init__(self, jobs: dict, uri: str, sweep_key: str | None):
        self.jobs, self.uri, self.sweep_key = jobs, uri, sweep_key
        self._tracker = None
        self.ended: set[str] = set()  # run_keys whose trial completed, was stopped or failed

    @property
    def tracker(self):
        if self._tracker is None:
            from bench.tracking.runs import MlflowTracker

            self._tracker = MlflowTracker(next(iter(self.jobs.values())).experiment, self.uri)
        return self._tracker

    def on_trial_start(self, iteration, trials, trial, **info):
        job = self.jobs[trial.config["run_key"]]
        _log.info("trial %s (%s) started", trial_name(job), job.run_key)

    def on_trial_complete(self, iteration, trials, trial, **info):
        from bench.jobs.state import mark_stopped
        from bench.jobs.lifecycle import JobLifecycle

        # Tune calls this for trials that finished or that its scheduler stopped, never for the trials it
        # tears down when the user interrupts the whole experiment (those stay resumable).
        job = self.jobs[trial.config["run_key"]]
        self.ended.add(job.run_key)
        epoch = (trial.last_result or {}).get("epoch")
        if JobLifecycle(job).done_path.is_file():
            _log.info("trial %s finished (%s epoch(s))", trial_name(job), epoch)
            return  # finished: the engine closed its run FINISHED before its last report
        _log.info("trial %s stopped by the scheduler after epoch %s", trial_name(job), epoch)
        tags = {"bench.stopped_by": "tune", "bench.stopped_epoch": epoch}
        ids = self.tracker.end_unfinished(job.run_key, "KILLED", among=("RUNNING", "FAILED"), tags=tags)
        mark_stopped(job, {"by": "tune", "epoch": epoch, "sweep_key": self.sweep_key, "run_ids": ids,
                           "name": job.display_name})

    def on_trial_error(self, iteration, trials, trial, **info):
        job = self.jobs[trial.config["run_key"]]
        self.ended.add(job.run_key)
        _log.info("trial %s failed; its log: %s", trial_name(job), trial.path)
        self.tracker.end_unfinished(job.run_key, "FAILED", among=("RUNNING",),
                                    tags={"bench.error": f"trial process failed; see {trial.path}"[:5000]})


DRIVER_CPU = 0.01  # a Ray Train trial's own share: it only relays reports between rank 0 and Tune


def _train_workers(n: int, resources: dict, max_concurrent: int | None) -> tuple[dict, int]:
    """Each of a job's n workers gets the per-trial resources (`--resources`, one GPU at most): refuse a job the
    whole cluster cannot hold, and run at most as many such jobs at once as it can (their drivers hold nothing,
    so Tune alone would start them all)."""
    worker = {"CPU": float(resources.get("cpu", 1)), "GPU": 1.0 if resources.get("gpu", 0) > 0 else 0.0}
    total = ray.cluster_resources()
    fits = []
    for key in ("CPU", "GPU"):
        if worker[key] > 0:
            need, have = n * worker[key], total.get(key, 0.0)
            if need > have:
                raise BenchError(f"--gpus {n} needs {need:g} {key}s for one job ({n} workers x {worker[key]:g}) but the "
                                 f"Ray cluster has {have:g}: lower --gpus or --resources, or add nodes.")
            fits.append(int(have // need))
    return worker, max(1, min([max_concurrent or 10**6, *fits]))


def run_trials(jobs, opts, uri: str, metric: str | None, mode: str | None, name: str) -> list[str]:
    """Run `jobs` as Tune trials; returns the run_keys of the trials that failed."""
    import time

    from bench.config import bench_home
    from bench.launch.processes import processes

    by_key = {j.run_key: j for j in jobs}
    env = {k: v for k, v in os.environ.items() if k.startswith(PASS_ENV)}
    env.update({"BENCH_HOME": str(bench_home()), "MLFLOW_TRACKING_URI": uri})
    scheduler = None
    if opts.asha is not None and metric:
        from ray.tune.schedulers import ASHAScheduler

        max_t = max(int(j.hparams.get("epochs", 1)) for j in jobs)
        scheduler = ASHAScheduler(time_attr="epoch", max_t=max(max_t, 1), grace_period=opts.asha.get("grace_period", 1),
                                  reduction_factor=opts.asha.get("reduction_factor", 2))
    trial_resources, workers, max_concurrent = opts.resources, None, opts.max_concurrent
    n = max(processes(j) for j in jobs)
    if n > 1:  # Ray Train trials: the workers hold the resources, the trial only drives them
        workers, max_concurrent = _train_workers(n, opts.resources, opts.max_concurrent)
        trial_resources = {"cpu": DRIVER_CPU, "gpu": 0}  # Tune refuses a trial of no resources at all
        from bench.sweeps.ray_train import quiet_driver_output

        quiet_driver_output()
    trainable = tune.with_resources(tune.with_parameters(_trial, jobs=by_key, env=env, workers=workers),
                                    trial_resources)
    status = StatusCallback(by_key, uri, name)
    storage = bench_home() / "ray_results"
    storage.mkdir(parents=True, exist_ok=True)
    tuner = tune.Tuner(
        trainable,
        param_space={"run_key": tune.grid_search(list(by_key))},
        tune_config=tune.TuneConfig(metric=metric, mode=mode, scheduler=scheduler, reuse_actors=True,
                                    max_concurrent_trials=max_concurrent,
                                    trial_dirname_creator=lambda t: f"{t.config['run_key']}_{t.trial_id}"),
        run_config=tune.RunConfig(name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=str(storage),
                                  failure_config=tune.FailureConfig(max_failures=opts.max_failures),
                                  callbacks=[status, *opts.callbacks],
                                  # bench prints the trial lines; Ray's own reporter (experiment and per-trial
                                  # config/result tables, status tables) only with verbose >= 2.
                                  verbose=max(0, opts.verbose - 1)),
    )
    _log.info(f"Ray Tune: {len(jobs)} trial(s), {opts.resources} each, max concurrent {opts.max_concurrent or 'unlimited'}"
        + (f", ASHA on {metric} ({mode})" if scheduler else "") + f"; results in {storage}")
    # Ray's new output engine prints its experiment table even at verbose 0; the legacy one is silent there.
    legacy = opts.verbose < 2 and "RAY_AIR_NEW_OUTPUT" not in os.environ
    if legacy:
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    try:
        grid = tuner.fit()
    finally:
        if legacy:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
    if set(by_key) - status.ended:
        # Tune returns normally after a Ctrl-C (its "Tuner.restore" hint does not apply: bench resumes
        # from its own checkpoints when the same command runs again).
        raise KeyboardInterrupt
    return [r.config["run_key"] for r in grid if r.error is not None]
