"""The SLURM executor (`--executor slurm`), through submitit: the only module of bench that imports submitit.

Each launch is one job array (one task per pending job of the plan); each task runs the job's lifecycle on a
node (one process, or `--gpus N` processes through bench/launch/processes.py). Submission records the array in
BENCH_HOME/slurm/<array id>/ (submitit's pickles and logs: <id>_<task>_log.out|.err) and in each job's directory
(slurm.json), which `bench status` reads to show SLURM's state beside the job's. Without --wait the command
returns after submission; with --wait it follows the array with a progress line and returns the failures, so
that `bench run` then runs WiSE-FT and the report in this process. A later `--wait` with the same arguments
follows jobs already queued instead of submitting them again.

Preemption and time limits: SLURM sends SIGUSR2 (submitit's `--signal=USR2@90`, or a preemption with
PreemptParameters=send_user_signal). The job stops at its next safe point (the end of the epoch: the engine has
just checkpointed), at most BENCH_SLURM_GRACE_S seconds later (default 60; after it, at once: the epoch is
replayed from the last checkpoint), its MLflow run ends KILLED, and submitit requeues it (same job id). The
restart resumes through the lifecycle (the run is reopened). SIGTERM (scancel, `scontrol requeue`) stops the job
KILLED at once; SLURM then decides whether it comes back. A job that fails for a real error is not requeued.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import submitit

from bench.errors import BenchError

log = logging.getLogger("bench")
GRACE_S = float(os.environ.get("BENCH_SLURM_GRACE_S", "60"))
# SLURM states after which a job does not come back (REQUEUED, PREEMPTED with requeue, PENDING: it does).
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE")
NETWORK_FS = ("nfs", "nfs4", "lustre", "gpfs", "beegfs", "cifs", "smb3", "ceph", "fuse.ceph", "glusterfs",
              "fuse.glusterfs", "panfs", "wekafs", "fuse.sshfs", "9p", "virtiofs")


class Submitted(SystemExit):
    """Submitted without --wait: the command ends here with status 0 (`bench sweep` goes on to its next sweep)."""


# --- inside the allocation -----------------------------------------------------------------------------------

class _Preemption:
    """SIGUSR2 in the job: ask the engine to stop at its next epoch end (the reporter), and interrupt it after
    the grace period if that end is further away."""

    def __init__(self):
        self.at: float | None = None

    def install(self):
        submitit_handler = signal.getsignal(signal.SIGUSR2)  # submitit's checkpoint-and-requeue
        signal.signal(signal.SIGUSR2, self._caught)
        return submitit_handler

    def _caught(self, signum, frame):
        if self.at is not None:
            return
        self.at = time.time()
        log.warning("SLURM signal %s: stopping at the next epoch end (at most %.0fs), then requeueing",
                    signal.Signals(signum).name, GRACE_S)
        timer = threading.Timer(GRACE_S, self._interrupt)
        timer.daemon = True
        timer.start()

    def _interrupt(self):
        import _thread

        log.warning("no epoch end within %.0fs: stopping now (the epoch is replayed from the last checkpoint)", GRACE_S)
        _thread.interrupt_main()

    def report(self, metrics: dict, epoch: int) -> bool:  # the engine's reporter: True stops after this epoch
        return self.at is not None


class SlurmTask:
    """One job in one SLURM task; submitit pickles it, calls it on the node, and calls `checkpoint` to requeue."""

    def __init__(self, job, uri: str):
        self.job, self.uri = job, uri

    def __call__(self) -> dict | None:
        from bench.jobs.lifecycle import JobLifecycle, train_one
        from bench.launch.processes import launch_local, processes
        from bench.runtime.logs import setup_logging
        from bench.tracking.runs import MlflowTracker

        setup_logging()
        os.environ["MLFLOW_TRACKING_URI"] = self.uri
        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
        log.info("[%s] SLURM job %s on %s%s", self.job.display_name, _task_id(), os.uname().nodename,
                 f" (restart {restarts})" if restarts else "")
        preemption = _Preemption()
        requeue = preemption.install()
        try:
            n = processes(self.job)
            if n > 1:
                summary = launch_local(self.job, self.uri, n, wait=True)
            else:
                summary = train_one(self.job, MlflowTracker(self.job.experiment, self.uri), preemption, wait=True)
        except BaseException:
            if preemption.at is None:
                raise  # a real error (or a SIGTERM): not requeued
            summary = None  # stopped by the grace timer, or ranks killed by the signal: resume after the requeue
        if preemption.at is not None and not JobLifecycle(self.job).done_path.is_file():
            log.info("[%s] requeueing: the restart resumes from the last checkpoint", self.job.display_name)
            requeue(signal.SIGUSR2, None)  # submitit: checkpoint() below, `scontrol requeue`, exit
        return summary

    def checkpoint(self, *args, **kwargs):
        return submitit.helpers.DelayedSubmission(SlurmTask(self.job, self.uri))


def _task_id() -> str:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID", "?")


# --- on the submitting machine -------------------------------------------------------------------------------

def _command(*argv: str, timeout: float = 30) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def check_cluster() -> None:
    if _command("sinfo", "-h", "-o", "%P") is None:
        raise BenchError("No SLURM cluster answers here (`sinfo` fails): submit from a login node of the cluster, "
                         "or set SLURM_CONF (the test cluster: `eval \"$(scripts/slurm/local_cluster.sh start | grep "
                         "'^export ')\"`).")


def _nodes(partition: str | None) -> set[str] | None:
    out = _command("sinfo", "-h", "-N", "-o", "%N", *(["-p", partition] if partition else []))
    return None if out is None else {n.strip() for n in out.split() if n.strip()}


def _fstype(path: Path) -> str | None:
    """The filesystem type of the mount holding `path` (Linux /proc/mounts), or None."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return None
    path = path.resolve()
    best = ("", None)
    for fields in mounts:
        if len(fields) >= 3:
            mount = fields[1].replace("\\040", " ")
            if (path == Path(mount) or Path(mount) in path.parents) and len(mount) > len(best[0]):
                best = (mount, fields[2])
    return best[1]


def check_shared(uri: str, home: Path, partition: str | None, assume_shared: bool) -> None:
    """Jobs on other nodes must see BENCH_HOME and the MLflow store: refuse local disks when the partition's
    nodes are not this machine; say so when that cannot be told."""
    import socket

    nodes = _nodes(partition)
    here = {socket.gethostname().split(".")[0], os.uname().nodename.split(".")[0]}
    if assume_shared or (nodes is not None and nodes <= here):
        return  # forced, or every node of the partition is this machine
    paths = [("BENCH_HOME", home)]
    if uri.startswith("sqlite:///"):
        paths.append(("the SQLite MLflow store", Path(uri[len("sqlite:///"):])))
    force = ("If every node mounts it at the same path, add --slurm-shared; else put BENCH_HOME on shared storage "
             "and use a tracking server (MLFLOW_TRACKING_URI=http://HOST:PORT).")
    if nodes is None:
        raise BenchError(f"Cannot tell which nodes the jobs will run on (`sinfo` fails), so cannot tell whether they "
                         f"see {home}. {force}")
    for what, path in paths:
        fs = _fstype(path if path.exists() else path.parent)
        if fs not in NETWORK_FS:
            raise BenchError(f"The jobs run on {', '.join(sorted(nodes))} but {what} ({path}) is on a local disk "
                             f"({fs or 'unknown'} filesystem) that those nodes do not see. {force}")
    if uri.startswith("sqlite:///"):
        log.warning("warning: a SQLite MLflow store on network storage relies on that storage's file locks (often "
                    "broken on NFS); a tracking server is safer (docs/clusters.md)")


def executor(folder: Path, slurm: dict, n_jobs: int):
    ex = submitit.AutoExecutor(folder=str(folder / "%j"), cluster="slurm", slurm_max_num_timeout=3)
    params = {"timeout_min": slurm["time_min"], "cpus_per_task": slurm["cpus"], "name": slurm.get("name", "bench"),
              "slurm_array_parallelism": slurm.get("parallel") or n_jobs}
    if slurm.get("gpus"):
        params["gpus_per_node"] = slurm["gpus"]
    for key in ("partition", "mem", "account", "qos"):
        if slurm.get(key):
            params[f"slurm_{key}"] = slurm[key]
    if slurm.get("extra"):
        params["slurm_additional_parameters"] = dict(slurm["extra"])
    ex.update_parameters(**params)
    return ex


def slurm_states(ids: list[str]) -> dict[str, str]:
    """{"12_0": "RUNNING", ...} from squeue (queued, running and recently ended jobs), then sacct (older ones)."""
    ids = [i for i in dict.fromkeys(ids) if i]
    if not ids:
        return {}
    arrays = ",".join(dict.fromkeys(i.split("_")[0] for i in ids))
    states: dict[str, str] = {}
    out = _command("sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", arrays) or ""
    for line in out.splitlines():
        jid, _, state = line.partition("|")
        if state:
            states[jid.strip()] = state.split()[0]  # "CANCELLED by 0" -> CANCELLED
    out = _command("squeue", "-h", "-t", "all", "-j", arrays, "-o", "%i|%T") or ""
    for line in out.splitlines():  # fresher than sacct
        jid, _, state = line.partition("|")
        if state:
            states[jid.strip()] = state.strip()
    for jid in ids:  # tasks of an array that has not started them yet show as one line, "12_[0-3]"
        if jid not in states:
            states[jid] = next((v for k, v in states.items() if k.startswith(jid.split("_")[0] + "_[")), "UNKNOWN")
    return {i: states[i] for i in ids}


def record_path(job) -> Path:
    return job.run_dir / "slurm.json"


def recorded(job) -> dict | None:
    try:
        return json.loads(record_path(job).read_text())
    except (OSError, ValueError):
        return None


def _record(job, job_id: str, folder: Path) -> None:
    from bench.fsutil import write_json_atomic

    job.run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic({"job_id": job_id, "folder": str(folder), "submitted": time.time()}, record_path(job))


def run_jobs(jobs, opts, uri: str, metric=None, mode=None, name: str = "run") -> list[str]:
    """Submit `jobs` as one array (jobs already queued or running under SLURM are followed, not submitted
    again); with opts.slurm["wait"], follow them to the end and return the run_keys that failed."""
    from bench.config import bench_home

    slurm = dict(opts.slurm or {})
    check_cluster()
    home = bench_home().resolve()
    check_shared(uri, home, slurm.get("partition"), slurm.get("shared", False))
    queued = {}
    known = {j.run_key: (recorded(j) or {}).get("job_id") for j in jobs}
    alive = slurm_states([i for i in known.values() if i])
    for job in jobs:
        state = alive.get(known[job.run_key] or "", "UNKNOWN")
        if state not in ENDED and state != "UNKNOWN":
            queued[job.run_key] = known[job.run_key]
            log.info("== %s: already SLURM job %s (%s); following it", job.display_name, known[job.run_key], state)
    submit = [j for j in jobs if j.run_key not in queued]
    folder = home / "slurm"
    array = None
    if submit:
        ex = executor(folder, {**slurm, "name": name}, len(submit))
        with ex.batch():
            handles = [ex.submit(SlurmTask(job, uri)) for job in submit]
        array = handles[0].job_id.split("_")[0]
        for job, handle in zip(submit, handles):
            _record(job, handle.job_id, folder / handle.job_id)
            queued[job.run_key] = handle.job_id
        print(f"Submitted SLURM job array {array}: {len(submit)} job(s) ({slurm['describe']}); logs: "
              f"{folder}/{array}_<i>/{array}_<i>_0_log.out (and .err)")
    if not slurm.get("wait"):
        print(f"Follow: `bench status{slurm.get('status_args', '')}` (SLURM states beside job states), "
              f"`squeue -j {','.join(dict.fromkeys(i.split('_')[0] for i in queued.values()))}`; add --wait to this "
              "command to follow the jobs and then run what depends on them.")
        sys.stdout.flush()
        raise Submitted(0)
    return follow(jobs, queued)


def follow(jobs, queued: dict[str, str], poll_s: float = 2.0) -> list[str]:
    """Wait until every SLURM job ended, printing a progress line when it changes; returns the failed run_keys."""
    from collections import Counter

    from bench.jobs.lifecycle import JobLifecycle

    by_key = {j.run_key: j for j in jobs}
    last, t0 = "", time.time()
    while True:
        states = slurm_states(list(queued.values()))
        done = {k for k in queued if JobLifecycle(by_key[k]).done_path.is_file()}
        ended = {k for k, i in queued.items() if states[i] in ENDED or (k in done and states[i] == "UNKNOWN")}
        line = ", ".join(f"{n} {s}" for s, n in sorted(Counter(states.values()).items()))
        line = f"SLURM: {line}; {len(done)}/{len(queued)} job(s) done"
        if line != last:
            print(f"[{time.time() - t0:5.0f}s] {line}", flush=True)
            last = line
        if len(ended) == len(queued):
            break
        time.sleep(poll_s)
    failed = [k for k in queued if k not in done]
    for key in failed:
        job_id = queued[key]
        log.error("== %s FAILED: SLURM job %s ended %s; its log: %s", by_key[key].display_name, job_id,
                  states[job_id], _log_file(by_key[key], job_id))
    return failed


def _log_file(job, job_id: str) -> str:
    return str(Path((recorded(job) or {}).get("folder", ".")) / f"{job_id}_0_log.err")


def status_lines(jobs, job_states: list[str]) -> list[str]:
    """`bench status`: one line per job ever submitted to SLURM: its SLURM job, SLURM's state, the job's state."""
    subs = [(j, s, recorded(j)) for j, s in zip(jobs, job_states)]
    subs = [(j, s, r) for j, s, r in subs if r and r.get("job_id")]
    if not subs:
        return []
    states = slurm_states([r["job_id"] for _, _, r in subs])
    lines = [f"SLURM jobs ({len(subs)}): SLURM state / job state"]
    for job, state, rec in subs:
        slurm_state = states.get(rec["job_id"], "UNKNOWN")
        if slurm_state == "UNKNOWN" and state == "done":
            slurm_state = "COMPLETED"  # forgotten by squeue and no accounting: its done marker says it ended well
        lines.append(f"  {rec['job_id']:<10} {slurm_state:<11} {state:<10} {job.display_name} ({job.run_key})")
    return lines
