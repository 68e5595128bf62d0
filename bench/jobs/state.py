"""Job states, from the job's directory and its MLflow runs (DomainBed's NOT_LAUNCHED/INCOMPLETE/DONE, plus
early stops):

    pending     no directory under $BENCH_HOME/jobs/<run_key> and no MLflow run
    running     another process holds the job's lock (bench/runtime/locks.py) right now
    incomplete  a directory (checkpoint, ...) or an unfinished run (RUNNING after a crash, FAILED, KILLED by
                Ctrl-C); launching resumes it from its last checkpoint
    stopped     stopped early by a scheduler (ASHA): a `stopped.json` marker and a KILLED run. Final for
                `bench sweep`; `bench run` asks for the whole job and resumes it
    done        a `done.json` marker and a FINISHED run

A `done.json` without a FINISHED run (the store was replaced or the run deleted) is incomplete: launching
sets the marker aside as `done.stale.json` and trains the job again so that MLflow holds its record.
This module imports neither Ray nor torch.
"""
from __future__ import annotations

import shutil
import time
from collections import Counter

PENDING, RUNNING, INCOMPLETE, STOPPED, DONE = "pending", "running", "incomplete", "stopped", "done"
STATES = (PENDING, RUNNING, INCOMPLETE, STOPPED, DONE)
# A running job is launched too: the launcher waits for its lock, then finds it done (or resumes it).
SWEEP_LAUNCHES = (PENDING, RUNNING, INCOMPLETE)
RUN_LAUNCHES = (PENDING, RUNNING, INCOMPLETE, STOPPED)


def run_indexes(jobs, uri: str | None = None) -> dict[str, dict]:
    """{experiment: {run_key: [(run_id, status)]}} for the experiments of `jobs` (read-only)."""
    from bench.tracking.store import check_reachable, run_index, tracking_uri

    uri = uri or tracking_uri()
    check_reachable(uri)  # an unreachable server: one clear error now, not MLflow's minutes of retries
    return {exp: run_index(exp, uri) for exp in dict.fromkeys(j.experiment for j in jobs)}


def job_state(job, runs: list[tuple[str, str]]) -> str:
    from bench.runtime.locks import job_lock

    statuses = {status for _, status in runs}
    d = job.run_dir
    if job_lock(job.run_key).busy():
        return RUNNING
    if (d / "done.json").is_file() and "FINISHED" in statuses:
        return DONE
    if (d / "stopped.json").is_file() and "KILLED" in statuses and "RUNNING" not in statuses:
        return STOPPED
    if statuses or (d.is_dir() and any(d.iterdir())):
        return INCOMPLETE
    return PENDING


def job_states(jobs, uri: str | None = None) -> list[str]:
    indexes = run_indexes(jobs, uri)
    return [job_state(j, indexes[j.experiment].get(j.run_key, [])) for j in jobs]


def prepare_launch(job) -> None:
    """Before (re)launching an incomplete job: a stale done marker would make the engine skip it."""
    from bench.runtime.locks import job_lock

    if job_lock(job.run_key).busy():
        return  # another process is running it: its markers are its own
    done = job.run_dir / "done.json"
    if done.is_file() and not _has_finished_run(job):
        done.replace(job.run_dir / "done.stale.json")
    stopped = job.run_dir / "stopped.json"
    if stopped.is_file():
        stopped.unlink()


def _has_finished_run(job) -> bool:
    """The marker is stale only when no FINISHED run backs it (the store was replaced, the run deleted)."""
    from bench.tracking.store import run_index

    return any(st == "FINISHED" for _, st in run_index(job.experiment).get(job.run_key, []))


def mark_stopped(job, info: dict) -> None:
    from bench.fsutil import write_json_atomic

    write_json_atomic({**info, "run_key": job.run_key, "time": time.time()}, job.run_dir / "stopped.json")


def counts(states) -> str:
    c = Counter(states)
    return ", ".join(f"{c[s]} {s}" for s in STATES if c[s]) or "no jobs"


def format_table(jobs, states, extra=None) -> str:
    """One line per job: run_key, state, task, method, seed, the hparams that differ between jobs."""
    varying = sorted({k for j in jobs for k in j.hparams if len({repr(x.hparams.get(k)) for x in jobs}) > 1})
    shown = varying or [k for k in ("lr", "wd", "batch_size", "epochs") if jobs and k in jobs[0].hparams]
    lines = []
    for i, (job, state) in enumerate(zip(jobs, states)):
        hp = ", ".join(f"{k}={_fmt(job.hparams.get(k))}" for k in shown)
        prefix = f"{extra[i]:>4}  " if extra else ""
        lines.append(f"  {prefix}{job.run_key}  {state:<10} {job.task:<14} {job.method:<9} seed {job.seed}  {hp}"
                     + (_resume_note(job) if state == DONE else ""))
    return "\n".join(lines)


def _resume_note(job) -> str:
    """How a done job's last attempt started, from done.json (written by bench/jobs/lifecycle.py)."""
    import json

    try:
        done = json.loads((job.run_dir / "done.json").read_text())
    except (OSError, ValueError):
        return ""
    frm = done.get("resumed_from") if isinstance(done, dict) else None
    return f"  (resumed from {frm}, {done.get('attempt_steps')} steps)" if frm and frm != "fresh" else ""


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# --- cleaning -------------------------------------------------------------------------------------------
def unfinished_everywhere(include_stopped: bool = False, uri: str | None = None) -> list[dict]:
    """Every unfinished job of this BENCH_HOME: job directories that are not done, and the unfinished runs of
    jobs that are not done. FINISHED runs are never listed (reports read them). On a shared tracking server,
    runs of jobs with no directory here belong to other machines and are left alone."""
    from bench.config import bench_home
    from bench.tracking.store import experiment_names, run_index, tracking_uri

    uri = uri or tracking_uri()
    local_store = not uri.startswith(("http://", "https://"))
    runs: dict[str, list[tuple[str, str, str]]] = {}
    for exp in experiment_names(uri):
        for key, items in run_index(exp, uri).items():
            runs.setdefault(key, []).extend((rid, st, exp) for rid, st in items)
    jobs_dir = bench_home() / "jobs"
    keys = set(runs) | ({p.name for p in jobs_dir.iterdir() if p.is_dir()} if jobs_dir.is_dir() else set())
    out = []
    for key in sorted(keys):
        d = jobs_dir / key
        items = runs.get(key, [])
        statuses = {st for _, st, _ in items}
        if (d / "done.json").is_file() and "FINISHED" in statuses:
            continue
        stopped = (d / "stopped.json").is_file() and "KILLED" in statuses and "RUNNING" not in statuses
        if stopped and not include_stopped:
            continue
        deletable = [r for r in items if r[1] != "FINISHED"] if (d.is_dir() or local_store) else []
        if not d.is_dir() and not deletable:
            continue
        out.append({"run_key": key, "dir": d if d.is_dir() else None, "runs": deletable,
                    "state": STOPPED if stopped else INCOMPLETE})
    return out


def describe(entry) -> str:
    runs = Counter(st for _, st, _ in entry["runs"])
    what = (["directory"] if entry["dir"] is not None else []) + [f"{n} {st} run(s)" for st, n in sorted(runs.items())]
    exps = sorted({exp for _, _, exp in entry["runs"]})
    return f"  {entry['run_key']}  {entry['state']:<10} {', '.join(what)}" + (f"  [{', '.join(exps)}]" if exps else "")


def remove(entries, uri: str | None = None) -> None:
    """Delete the job directories and MLflow runs of `entries` (MLflow moves runs to its trash; `mlflow gc`
    purges them)."""
    from bench.tracking.store import client

    c = client(uri) if any(e["runs"] for e in entries) else None
    for e in entries:
        for rid, _, _ in e["runs"]:
            c.delete_run(rid)
        if e["dir"] is not None:
            shutil.rmtree(e["dir"], ignore_errors=True)
