"""One training job as several processes (`--gpus N`): launched here with PyTorch's elastic launcher (the API
behind torchrun), or by Ray Train (sweeps/ray_train.py, its `ray_worker`), or by a user's own `torchrun` (`python -m
bench.cli.torchrun`); each process then runs `run_rank`.

Rank 0 runs the job lifecycle as one process would (lock, resume decision, MLflow run, checkpoints,
selected weights, done marker) and tells the other ranks when training starts and from which checkpoint;
they run the same training body on their share of each global batch and write nothing. A rank that fails
ends the whole group (the elastic agent stops the others); the launcher then ends the run FAILED with the
failing rank's error, and the next `bench run` resumes from rank 0's last checkpoint.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from bench.errors import BenchError
from bench.runtime.host import free_port

log = logging.getLogger(__name__)


def processes(job) -> int:
    """How many processes a job runs as: runtime `nproc` (`--gpus N`) for methods that train, else 1."""
    from bench.methods import METHODS

    n = int(job.runtime.get("nproc", 1) or 1)
    return n if n > 1 and job.method in METHODS.names() and METHODS.get(job.method).trains else 1


def run_rank(job, tracker=None, reporter=None, wait: bool = False) -> dict | None:
    """This process's part of `job`, in a process group already joined. Rank 0 returns the job's summary;
    other ranks return None. Raises bench.jobs.lifecycle.Busy on rank 0 when another process holds the job."""
    from bench.jobs import checkpoints
    from bench.runtime.distributed import current, from_main
    from bench.train.engine import TrainBody
    from bench.jobs.lifecycle import FollowerContext, JobLifecycle

    rank = current()
    body = TrainBody(job)
    if rank.main:
        try:
            return JobLifecycle(job, tracker, reporter).run(body, wait=wait)
        finally:
            if rank.distributed and not body.started:
                from_main(None)  # done, busy or failed before training: the other ranks have nothing to do
    body.prepare()  # model and data load while rank 0 decides
    start = from_main(None)
    if start is None:
        return None
    resume = checkpoints.load(Path(start["resume"])) if start["resume"] else None
    body.execute(FollowerContext(job, resume))
    return None


# --- one node: torch elastic ---------------------------------------------------------------------------------

def launch_local(job, uri: str, nproc: int, wait: bool = False) -> dict:
    """Run `job` as `nproc` processes on this machine (one per GPU; gloo processes on CPU) and return rank 0's
    summary. A failed rank raises BenchError naming it; its MLflow run ends FAILED."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from bench.jobs.lifecycle import Busy

    check_local_gpus(nproc, job.runtime.get("device"))
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"bench-{job.run_key}-{os.getpid()}",
                          rdzv_backend="c10d", rdzv_endpoint=f"127.0.0.1:{free_port()}", max_restarts=0,
                          monitor_interval=0.5, start_method="spawn", local_addr="127.0.0.1")
    payload = {"job": job, "uri": uri, "wait": wait}
    elastic_log = logging.getLogger("torch.distributed.elastic")
    level = elastic_log.level
    elastic_log.setLevel(logging.WARNING)  # the agent's INFO lines (rendezvous, worker specs) are not bench's
    try:
        results = elastic_launch(config, worker_main)(payload)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        message = _failure_message(failure)
        _fail_run(job, uri, f"rank {rank} of {nproc} failed: {message}")
        raise BenchError(f"rank {rank} of {nproc} failed: {message}") from None
    finally:
        elastic_log.setLevel(level)
    out = results.get(0) or {}
    if out.get("status") == "busy":
        raise Busy(out["message"])
    return out.get("summary")


def check_local_gpus(nproc: int, device: str | None) -> None:
    """`--gpus N` on this machine: N GPUs must be there, unless `--device cpu` asks for N CPU processes."""
    import torch

    device = str(device or "auto")
    if nproc <= 1 or device == "cpu":
        return
    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if nproc > have:
        hint = "add --device cpu to run that many CPU processes (gloo) instead" if have == 0 else f"use --gpus {have}"
        raise BenchError(f"--gpus {nproc} asks for {nproc} GPUs but this machine has {have}: {hint}, or run across "
                         "nodes (README, 'More than one GPU').")


def _failure_message(failure) -> str:
    """The failing rank's exception message (from its error file), else its exit code or signal."""
    message = getattr(failure, "message", None)
    if isinstance(message, dict):
        message = message.get("message")
    if isinstance(message, str) and message and not message.startswith("To enable traceback"):
        return message.strip().splitlines()[0][:2000]
    code = getattr(failure, "exitcode", None)
    if code is not None and code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"


def _fail_run(job, uri: str, message: str) -> None:
    """A rank died: rank 0 may have ended the run KILLED (the agent stopped it) or not at all (SIGKILL). The
    run is FAILED with the reason; its checkpoint stays, so the next run resumes."""
    from bench.tracking.runs import MlflowTracker

    try:
        MlflowTracker(job.experiment, uri).end_unfinished(job.run_key, "FAILED", among=("RUNNING", "KILLED"),
                                                          tags={"bench.error": message[:5000]})
    except Exception as exc:  # the store may be what failed; the error above still reaches the user
        log.warning("could not mark the run of %s FAILED: %s", job.display_name, exc)


def worker_main(payload: dict):
    """The entry point of each elastic worker process."""
    from torch.distributed.elastic.multiprocessing.errors import record

    return record(_worker)(payload)


def _worker(payload: dict):
    import torch.distributed as dist

    from bench.runtime.distributed import init_process_group
    from bench.jobs.lifecycle import Busy
    from bench.runtime.host import pick_device
    from bench.tracking.runs import MlflowTracker

    job = payload["job"]
    rank = init_process_group(pick_device(job.runtime.get("device")).type)
    configure_logging(rank.rank)
    try:
        tracker = MlflowTracker(job.experiment, payload["uri"]) if rank.main else None
        try:
            summary = run_rank(job, tracker, wait=payload.get("wait", False))
        except Busy as exc:
            return {"status": "busy", "message": str(exc)}
        return {"status": "done", "summary": summary} if rank.main else None
    finally:
        dist.destroy_process_group()


def configure_logging(rank: int) -> None:
    """Rank 0 logs like the CLI (bench's lines on stdout); the other ranks only warnings (one voice per job)."""
    from bench.runtime.logs import setup_logging

    setup_logging()
    if rank != 0:
        logging.getLogger("bench").setLevel(logging.WARNING)
        logging.getLogger().setLevel(logging.ERROR)  # libraries' warnings (open_clip's) are rank 0's to print
        os.environ["TQDM_DISABLE"] = "1"
