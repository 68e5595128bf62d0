"""Launch jobs with an executor and keep MLflow honest about them.

    local  one job after another in this process; Ray is never imported
    ray    Ray Tune trials (sweeps/ray_executor.py), one per job, on this machine or a cluster (--address)

Both run only pending and incomplete jobs (incomplete ones resume from their checkpoint), both run the
same `train_one`. Everything a user can get wrong (space, names, Ray address, tracking server) fails
before the first write. With Ray and the default SQLite store, trials talk to one `mlflow server` on
127.0.0.1 that bench starts and stops, so that a single process writes the database. After the trials,
no run of the launched jobs stays RUNNING: an interrupted one ends KILLED, and the sweep's parent run
ends FINISHED, FAILED (a trial failed) or KILLED (interrupted).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from bench.errors import BenchError

from .state import SWEEP_LAUNCHES, counts, job_states, prepare_launch

EXECUTORS = ("local", "ray")


@dataclass
class LaunchOptions:
    executor: str = "local"
    address: str | None = None            # Ray cluster to join ("auto", "HOST:PORT", "ray://HOST:PORT")
    resources: dict | None = None         # per trial: {"cpu": 1, "gpu": 0}
    max_concurrent: int | None = None
    asha: dict | None = None              # {"grace_period": 1, "reduction_factor": 2}; None: no early stopping
    max_failures: int = 0                 # Ray retries of a crashed trial within this invocation
    num_cpus: int | None = None           # for a Ray instance started here
    verbose: int = 1
    callbacks: list = field(default_factory=list)   # extra Tune callbacks (tests inject faults with these)


@dataclass
class Outcome:
    launched: list
    failed: list = field(default_factory=list)      # run_keys
    states: list = field(default_factory=list)      # of every job passed in, after the launch
    seconds: float = 0.0
    parent_run_id: str | None = None


def parse_resources(text: str | None) -> dict | None:
    """'cpu=4,gpu=1' -> {'cpu': 4.0, 'gpu': 1.0}."""
    if not text:
        return None
    out = {}
    for item in text.split(","):
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not eq or key not in ("cpu", "gpu") or number < 0:
            raise BenchError(f"--resources expects cpu=N,gpu=M per trial (for example cpu=4,gpu=1), got '{text}'.")
        out[key] = number
    return out


def check_options(opts: LaunchOptions) -> None:
    if opts.executor not in EXECUTORS:
        from bench.errors import unknown_name

        raise unknown_name("executor", opts.executor, list(EXECUTORS))
    if opts.max_concurrent is not None and opts.max_concurrent < 1:
        raise BenchError(f"--max-concurrent must be >= 1, got {opts.max_concurrent}.")
    if opts.executor == "local":
        extra = [name for name, v in (("--address", opts.address), ("--resources", opts.resources),
                                      ("--max-concurrent", opts.max_concurrent)) if v]
        if extra:
            raise BenchError(f"{', '.join(extra)} apply to --executor ray only.")


def check_address(address: str | None, timeout: float = 5.0) -> None:
    """A Ray address that does not answer fails now, in seconds, not after Ray's own minutes of retries."""
    import socket

    if address in (None, "", "auto", "local"):
        return
    target = address.split("://", 1)[-1].rstrip("/")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise BenchError(f"--address expects HOST:PORT, ray://HOST:PORT or auto, got '{address}'.")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise BenchError(f"Cannot reach the Ray cluster at {address}: {exc.strerror or exc}. Start its head node "
                         "(`ray start --head --port PORT`), check the address, or omit --address to run Ray on this "
                         "machine.") from None


def launch(jobs, opts: LaunchOptions, sweep=None, log=print, launchable=SWEEP_LAUNCHES) -> Outcome:
    """Run the `jobs` whose state is launchable (a sweep's: pending and incomplete, with its parent run;
    `bench run` also finishes jobs a sweep stopped early)."""
    from bench.tracking import MlflowTracker, check_reachable, local_server, tracking_uri

    check_options(opts)
    uri = tracking_uri()
    check_reachable(uri)
    if opts.executor == "ray":
        check_address(opts.address)
    states = job_states(jobs)
    todo = [j for j, s in zip(jobs, states) if s in launchable]
    log(f"{len(jobs)} job(s): {counts(states)}; launching {len(todo)}")
    if not todo:
        return Outcome([], states=states)
    ray_started = False
    if opts.executor == "ray":
        from . import ray_executor

        ray_started, opts.resources = ray_executor.connect(opts)
    t0 = time.time()
    try:
        if sweep is not None:
            sweep.save()
        MlflowTracker(jobs[0].experiment, uri)  # the experiment (and a new SQLite store's tables) before any trial
        serve = local_server(uri) if opts.executor == "ray" else contextlib.nullcontext(uri)
        with serve as run_uri:
            outcome = _launch_tracked(todo, opts, sweep, run_uri, log)
    finally:
        if ray_started:
            import ray

            ray.shutdown()
    outcome.seconds = time.time() - t0
    outcome.states = job_states(jobs)
    return outcome


def _launch_tracked(todo, opts: LaunchOptions, sweep, uri: str, log) -> Outcome:
    from bench.tracking import MlflowTracker

    tracker = MlflowTracker(todo[0].experiment, uri)
    parent = None
    if sweep is not None:
        parent = tracker.open_parent(sweep.key, sweep.name, sweep.parent_tags(), sweep.parent_params(), sweep.spec_text())
        sweep.tag_jobs(parent)
        log(f"MLflow parent run {parent} ({sweep.name}, sweep {sweep.key})")
    for job in todo:
        prepare_launch(job)
    outcome = Outcome(todo, parent_run_id=parent)
    status = "KILLED"
    try:
        if opts.executor == "ray":
            from . import ray_executor

            metric, mode = (sweep.metric, sweep.mode) if sweep else (None, None)
            outcome.failed = ray_executor.run_trials(todo, opts, uri, metric=metric, mode=mode,
                                                     name=(sweep.key if sweep else "run"), log=log)
        else:
            if opts.asha:
                log("note: ASHA early stopping needs --executor ray; every trial runs to its last epoch")
            outcome.failed = _run_local(todo, tracker, log)
        status = "FAILED" if outcome.failed else "FINISHED"
    finally:
        index = tracker.runs_by_key()
        for job in todo:  # never leave a run RUNNING: whatever still is was interrupted with us
            for run_id, run_status in index.get(job.run_key, []):
                if run_status == "RUNNING":
                    tracker.set_status(run_id, "KILLED", {"bench.stopped_by": "interrupt"})
        if parent is not None:
            tracker.set_status(parent, status)
    return outcome


def _run_local(jobs, tracker, log) -> list[str]:
    """One job after another in this process; a crashed job (a diverged learning rate, ...) is recorded
    FAILED by the engine and the others still run."""
    from bench.engine import train_one

    failed = []
    for i, job in enumerate(jobs, 1):
        t0 = time.time()
        log(f"== trial {i}/{len(jobs)}: {job.display_name} ({job.run_key})")
        try:
            train_one(job, tracker.fork(), log=log)
        except Exception as exc:  # KeyboardInterrupt propagates
            failed.append(job.run_key)
            log(f"== {job.display_name} FAILED: {type(exc).__name__}: {exc}")
            continue
        log(f"== {job.display_name} finished in {time.time() - t0:.1f}s")
    return failed
