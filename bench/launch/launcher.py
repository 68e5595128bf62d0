"""The one launcher of `bench run` and `bench sweep`: which jobs run, where, and what happens when some fail.

Executors (found by name in EXECUTORS, so the core never imports Ray):
    local  one job after another in this process
    ray    Ray Tune trials (sweeps/ray_executor.py), one per job, on this machine or a cluster (--address)

Both run only launchable jobs (pending and incomplete; `bench run` also finishes jobs a sweep stopped
early) through the same job lifecycle, then `bench run` evaluates WiSE-FT over the finished bases in this
process. Failure policy, the same for both: a failed job is recorded FAILED, the others still run, the
failures are listed at the end and the command exits non-zero. A job another process is running (its lock
is held) is skipped at first and waited for at the end, so two `bench` processes on one BENCH_HOME never
run a job twice. Everything a user can get wrong fails before the first write. With Ray and the default
SQLite store, trials talk to one `mlflow server` on 127.0.0.1 that bench starts and stops. After the
launch, no run of the launched jobs stays RUNNING, and a sweep's parent run ends FINISHED, FAILED or KILLED.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import time
from dataclasses import dataclass, field

from bench.errors import BenchError
from bench.jobs.state import SWEEP_LAUNCHES, counts, job_states, prepare_launch

log = logging.getLogger(__name__)
# name -> "module:function" running a list of jobs and returning the run_keys that failed.
EXECUTORS = {"local": "bench.launch.launcher:run_local", "ray": "bench.sweeps.ray_executor:run_trials", "slurm": "bench.sweeps.slurm_executor:run_jobs"}
# name -> "module:function" giving a context manager around the launch (connect to the cluster, and leave it).
SESSIONS = {"ray": "bench.sweeps.ray_executor:session"}


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
    slurm: dict | None = None             # --slurm-* options (sweeps/cli.py slurm_options)


@dataclass
class Outcome:
    launched: list
    failed: list = field(default_factory=list)      # run_keys of failed jobs (WiSE-FT alphas included)
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


def launch(jobs, opts: LaunchOptions, sweep=None, launchable=SWEEP_LAUNCHES, wiseft=None) -> Outcome:
    """Run the `jobs` whose state is launchable, then (for `bench run`) WiSE-FT: `wiseft` is
    (base methods, alphas). A sweep gets its parent run."""
    from bench.tracking.runs import MlflowTracker
    from bench.tracking.store import check_reachable, tracking_uri

    from bench.launch.preflight import check_home, check_tracking_uri

    check_options(opts)
    check_home()  # before tracking_uri(), which creates BENCH_HOME
    uri = tracking_uri()
    check_tracking_uri(uri)
    check_reachable(uri)
    if opts.executor == "ray":
        check_address(opts.address)
    states = job_states(jobs)
    todo = [j for j, s in zip(jobs, states) if s in launchable]
    bases = [j for j in jobs if wiseft and j.method in wiseft[0]]
    log.info("%d job(s): %s; launching %d", len(jobs), counts(states), len(todo))
    if not todo and not bases:
        return Outcome([], states=states)
    t0 = time.time()
    MlflowTracker(jobs[0].experiment, uri)  # the experiment (and a new SQLite store's tables) before any trial
    outcome = Outcome(todo)
    if todo:
        outcome = _launch_executor(todo, opts, sweep, uri)
    if bases:
        outcome.failed += run_derived(bases, wiseft[1], tracker_factory(uri), skip=set(outcome.failed))
    outcome.seconds = time.time() - t0
    outcome.states = job_states(jobs)
    return outcome


def _launch_executor(todo, opts: LaunchOptions, sweep, uri: str) -> Outcome:
    from bench.tracking.server import local_server

    session = _found(SESSIONS[opts.executor])(opts) if opts.executor in SESSIONS else contextlib.nullcontext()
    with session:  # Ray: joined (or started here) for the launch, and shut down after it if started here
        if sweep is not None:
            sweep.save()
        serve = local_server(uri) if opts.executor == "ray" else contextlib.nullcontext(uri)
        with serve as run_uri:
            return _launch_tracked(todo, opts, sweep, run_uri)


def _launch_tracked(todo, opts: LaunchOptions, sweep, uri: str) -> Outcome:
    from bench.runtime.locks import job_lock
    from bench.tracking.runs import MlflowTracker

    tracker = MlflowTracker(todo[0].experiment, uri)
    parent = None
    if sweep is not None:
        parent = tracker.open_parent(sweep.key, sweep.name, sweep.parent_tags(), sweep.parent_params(), sweep.spec_text())
        sweep.tag_jobs(parent)
        log.info("MLflow parent run %s (%s, sweep %s)", parent, sweep.name, sweep.key)
    for job in todo:
        prepare_launch(job)
    outcome = Outcome(todo, parent_run_id=parent)
    status = "KILLED"
    try:
        run = _executor(opts.executor)
        if opts.executor in ("ray", "slurm"):
            metric, mode = (sweep.metric, sweep.mode) if sweep else (None, None)
            outcome.failed = run(todo, opts, uri, metric=metric, mode=mode, name=(sweep.key if sweep else "run"))
        else:
            if opts.asha:
                log.info("note: ASHA early stopping needs --executor ray; every trial runs to its last epoch")
            outcome.failed = run(todo, tracker_factory(uri))
        status = "FAILED" if outcome.failed else "FINISHED"
    finally:
        index = tracker.runs_by_key()
        for job in todo:  # never leave a run RUNNING, unless another live process is running that job
            if job_lock(job.run_key).busy():
                continue
            for run_id, run_status in index.get(job.run_key, []):
                if run_status == "RUNNING":
                    tracker.set_status(run_id, "KILLED", {"bench.stopped_by": "interrupt"})
        if parent is not None:
            tracker.set_status(parent, status)
    return outcome


def _executor(name: str):
    return _found(EXECUTORS[name])


def _found(target: str):
    """'module:function' -> the function, imported only when that executor is used."""
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)


def tracker_factory(uri: str):
    """jobs -> a fresh tracker of the job's experiment (one client per experiment, shared)."""
    from bench.tracking.runs import MlflowTracker

    cache: dict[str, MlflowTracker] = {}

    def make(job):
        if job.experiment not in cache:
            cache[job.experiment] = MlflowTracker(job.experiment, uri)
        return cache[job.experiment].fork()

    return make


def _guarded(what: str, fn, failed: list, key: str):
    """Run fn(); a failure is logged and recorded, the launch goes on (KeyboardInterrupt propagates)."""
    from bench.jobs.lifecycle import Busy

    try:
        return fn()
    except Busy:
        raise  # not a failure: the caller defers the job
    except Exception as exc:
        failed.append(key)
        log.error("== %s FAILED: %s: %s", what, type(exc).__name__, exc)
        return None


def run_local(jobs, make_tracker) -> list[str]:
    """One job after another in this process. A job another process holds is deferred, then waited for."""
    from bench.jobs.lifecycle import Busy

    failed: list[str] = []
    deferred = []
    for i, job in enumerate(jobs, 1):
        t0 = time.time()
        log.info("== job %d/%d: %s (%s)", i, len(jobs), job.display_name, job.run_key)
        try:
            if _guarded(job.display_name, lambda: _train(job, make_tracker, wait=False), failed, job.run_key):
                log.info("== %s finished in %.1fs", job.display_name, time.time() - t0)
        except Busy as exc:
            log.info("== %s: skipped for now, %s", job.display_name, exc)
            deferred.append(job)
    for job in deferred:
        log.info("== waiting for %s (another process is running it)", job.display_name)
        _guarded(job.display_name, lambda: _train(job, make_tracker), failed, job.run_key)
    return failed


def _train(job, make_tracker, wait: bool = True):
    """One job in this process, or (`--gpus N`) as N processes on this machine."""
    from bench.launch.processes import launch_local, processes
    from bench.jobs.lifecycle import train_one

    tracker = make_tracker(job)
    n = processes(job)
    if n > 1:
        return launch_local(job, tracker.uri, n, wait=wait)
    return train_one(job, tracker, wait=wait)


def run_derived(bases, alphas, make_tracker, skip=()) -> list[str]:
    """WiSE-FT over each base job (skipping bases that failed); returns the run_keys that failed."""
    from bench.methods.wiseft import derive_jobs
    from bench.jobs.wiseft import run_wiseft

    failed: list[str] = []
    for base in bases:
        if base.run_key in skip:
            log.info("== WiSE-FT over %s skipped: the base job failed", base.display_name)
            continue
        derived = derive_jobs(base, alphas)
        log.info("== WiSE-FT over %s: %d alphas", base.display_name, len(derived))
        _guarded(f"WiSE-FT over {base.display_name}", lambda: run_wiseft(base, derived, make_tracker), failed,
                 base.run_key)
    return failed


def run_soups(jobs, make_tracker, parent_run_id: str | None = None, alphas=None) -> list[str]:
    """Uniform and greedy soups (bench/jobs/soup.py) of each (task, method, seed) with K >= 2 finished jobs among
    `jobs`, nested under `parent_run_id`; with `alphas`, WiSE-FT over each soup. Returns the run_keys that failed."""
    from bench.jobs.soup import run_soups as soups, soup_groups, soup_wiseft_jobs
    from bench.jobs.wiseft import run_wiseft

    failed: list[str] = []
    for group in soup_groups(jobs):
        what = f"soups of {len(group)} {group[0].method} runs on {group[0].task} seed {group[0].seed}"
        log.info("== %s", what)
        made = _guarded(what, lambda: soups(group, make_tracker, parent_run_id), failed, group[0].run_key) or []
        for soup, _ in made if alphas else []:
            derived = soup_wiseft_jobs(soup, alphas)
            _guarded(f"WiSE-FT over {soup.extra['soup']} soup", lambda: run_wiseft(soup, derived, make_tracker),
                     failed, soup.run_key)
    return failed
