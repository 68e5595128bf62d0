"""One job's life, in one place: its directory, lock, markers, checkpoints, selected weights and MLflow run.

    lock     BENCH_HOME/locks/job-<run_key>.lock (flock: released by the kernel when a process dies)
    done     jobs/<run_key>/done.json      the summary, written after the run is FINISHED
    stopped  jobs/<run_key>/stopped.json   stopped early by a scheduler (ASHA), run KILLED
    ckpt     jobs/<run_key>/checkpoint.pt  (+ .prev) checksummed, see bench/jobs/checkpoints.py
    selected jobs/<run_key>/selected.pt    the selected weights, loadable by open_clip

A *body* does the work (training in bench/train/engine.py, WiSE-FT evaluation in bench/jobs/wiseft.py); it sees a
`JobContext`, never the tracker or the directory. The lifecycle starts or reopens the MLflow run (the one
its checkpoint names, else the newest unfinished run of the job: under the job's lock no other process can
own it), ends it FINISHED, FAILED or KILLED (Ctrl-C, SIGTERM, an executor's early stop), and writes the
markers in an order that a kill at any instant leaves resumable: the run is FINISHED before `done.json` is
written, and a FINISHED run without its marker gets the marker rebuilt from MLflow instead of a retrain.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Protocol

from bench.jobs import checkpoints
from bench.hashing import file_sha256
from bench.fsutil import torch_save_atomic, write_json_atomic
from bench.runtime.locks import job_lock
from bench.runtime.signals import terminate_as_interrupt
from bench.jobs.tracker import NullTracker, Tracker
from bench.train.body import Result

log = logging.getLogger(__name__)


class Busy(Exception):
    """Another process holds this job's lock (it is running the job now)."""


class Body(Protocol):
    kind: str           # MLflow tag bench.kind: "job" or "wiseft"
    resumable: bool     # has checkpoints to resume from

    def prepare(self) -> tuple[dict, dict]: ...      # load model and data; return MLflow (params, tags)
    def execute(self, ctx: "JobContext") -> Result: ...


class NullReporter:
    """Executors pass a reporter; returning True from report() asks the job to stop early."""

    def report(self, metrics: dict, epoch: int) -> bool:
        return False


class JobContext:
    """What a body may do to the world: log metrics, checkpoint, keep selected weights, report progress."""

    writer = True  # rank 0 of a multi-process job, or the only process: the one that writes

    def __init__(self, life: "JobLifecycle", resume: dict | None, resume_path: Path | None = None):
        self._life, self.resume = life, resume
        self.steps = 0  # optimizer steps this attempt executed (the body counts them)
        self.resume_path = resume_path  # the checkpoint file `resume` came from (the other ranks load it too)

    @property
    def job(self):
        return self._life.job

    def log_metrics(self, metrics: dict, step: int) -> None:
        self._life.tracker.log_metrics(metrics, step)

    def log_text(self, text: str, name: str) -> None:
        self._life.tracker.log_text(text, name)

    def set_tags(self, tags: dict) -> None:
        if tags:
            self._life.tracker.set_tags(tags)

    def report(self, metrics: dict, epoch: int) -> bool:
        return bool(self._life.reporter.report(metrics, epoch))

    def stage_selected(self, obj: dict) -> None:
        """New selected weights; they replace selected.pt only with the next checkpoint, so that a resumed
        job never pairs an older selection state with weights from an epoch it is about to replay."""
        torch_save_atomic(obj, self._life.pending_path)

    def save_checkpoint(self, state: dict) -> None:
        life = self._life
        getattr(life.tracker, "flush", lambda: None)()  # the epoch's metrics are in before its checkpoint counts
        checkpoints.save({**state, "run_id": life.tracker.run_id}, life.ckpt_path)
        life.promote_selected(state["epoch"])

    def save_selected(self, obj: dict) -> None:
        """Selected weights of a body that keeps no checkpoint (untrained methods)."""
        torch_save_atomic(obj, self._life.selected_path)


class FollowerContext(JobContext):
    """A rank other than 0 of a multi-process job: it runs the same body on its share of each batch, but
    rank 0 alone writes (MLflow, checkpoints, selected weights) and decides (stop early, resume)."""

    writer = False

    def __init__(self, job, resume: dict | None):
        self._job, self.resume, self.resume_path = job, resume, None
        self.steps = 0

    @property
    def job(self):
        return self._job

    def log_metrics(self, metrics: dict, step: int) -> None:
        pass

    def log_text(self, text: str, name: str) -> None:
        pass

    def set_tags(self, tags: dict) -> None:
        pass

    def report(self, metrics: dict, epoch: int) -> bool:
        return False

    def stage_selected(self, obj: dict) -> None:
        pass

    def save_checkpoint(self, state: dict) -> None:
        pass

    def save_selected(self, obj: dict) -> None:
        pass


class JobLifecycle:
    def __init__(self, job, tracker: Tracker | None = None, reporter=None):
        self.job = job
        self.tracker = tracker or NullTracker()
        self.reporter = reporter or NullReporter()
        self.lock = job_lock(job.run_key)

    # --- paths -----------------------------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        return self.job.run_dir

    @property
    def done_path(self) -> Path:
        return self.dir / "done.json"

    @property
    def ckpt_path(self) -> Path:
        return self.dir / "checkpoint.pt"

    @property
    def selected_path(self) -> Path:
        return self.dir / "selected.pt"

    @property
    def pending_path(self) -> Path:
        return self.dir / "selected.pending.pt"

    # --- markers -----------------------------------------------------------------------------------------
    def load_done(self) -> dict | None:
        """The job's summary when it is done; a corrupt marker is set aside and rebuilt from the FINISHED
        MLflow run, and a missing one is rebuilt the same way (a kill between FINISHED and the marker)."""
        if self.done_path.is_file():
            try:
                done = json.loads(self.done_path.read_text())
                if isinstance(done, dict) and done.get("run_key") == self.job.run_key:
                    return done
                raise ValueError("not this job's marker")
            except (ValueError, OSError) as exc:
                kept = checkpoints.set_aside(self.done_path)
                log.warning("[%s] done marker unreadable (%s); moved to %s", self.job.display_name, exc, kept.name)
        rebuilt = self.tracker.final_metrics(self.job.run_key)
        if rebuilt is None:
            return None
        if self._trains and not (rebuilt.get("selected_sha256") and self.selected_ok(rebuilt)):
            # A training job is done only with the very weights its FINISHED run recorded. Without them it
            # trains again, and the old run must not stand beside the new one in reports.
            if not self._has_checkpoint():
                self._invalidate_run(rebuilt["run_id"], "selected.pt is missing or does not match its run")
            return None
        if self._has_checkpoint():
            ckpt = checkpoints.load_latest(self.ckpt_path)  # rare path: a marker lost after a FINISHED run
            if ckpt is not None and ckpt.get("run_id") != rebuilt["run_id"]:
                return None  # the checkpoint belongs to a later attempt of the job: resume that one
        write_json_atomic(rebuilt, self.done_path)
        log.info("[%s] done marker rebuilt from MLflow run %s", self.job.display_name, rebuilt["run_id"])
        return rebuilt

    def _resume_file(self) -> Path:
        """The checkpoint `load_latest` resumed from: a bad newest file was set aside, so what remains of the
        two is the good one."""
        return self.ckpt_path if self.ckpt_path.is_file() else checkpoints.prev_path(self.ckpt_path)

    def _has_checkpoint(self) -> bool:
        return self.ckpt_path.is_file() or checkpoints.prev_path(self.ckpt_path).is_file()

    @property
    def _trains(self) -> bool:
        return self.job.method != "wiseft"

    def selected_ok(self, done: dict | None = None) -> bool:
        """selected.pt is present and (when the marker recorded its digest) unaltered."""
        if not self.selected_path.is_file():
            return False
        want = (done or {}).get("selected_sha256")
        return want is None or file_sha256(self.selected_path) == want

    def promote_selected(self, epoch: int) -> None:
        if self.pending_path.is_file():
            self.pending_path.replace(self.selected_path)

    def invalidate(self, reason: str) -> None:
        """A done job whose outputs are lost or corrupt (selected.pt): set the marker aside and end its
        FINISHED run FAILED with the reason, so the job trains again and reports never read a run whose
        weights are gone. The old run's metrics stay in MLflow."""
        if self.done_path.is_file():
            try:
                done = json.loads(self.done_path.read_text())
            except ValueError:
                done = {}
            self.done_path.replace(self.dir / "done.stale.json")
            run_id = done.get("run_id") if isinstance(done, dict) else None
            if run_id:
                self._invalidate_run(run_id, reason)
        log.warning("[%s] %s: the job will train again", self.job.display_name, reason)

    def _invalidate_run(self, run_id: str, reason: str) -> None:
        self.tracker.set_status(run_id, "FAILED", {"bench.invalidated": reason})

    def _clean_leftovers(self, resume: dict | None) -> None:
        """Temporary files of a write a kill interrupted, and staged weights no checkpoint committed."""
        if not self.dir.is_dir():
            return
        for tmp in self.dir.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        if self.pending_path.is_file():
            # Staged at epoch e and committed by checkpoint e, but killed before the rename: promote it.
            epoch = _saved_epoch(self.pending_path)
            if resume is not None and epoch is not None and epoch <= resume["epoch"]:
                self.promote_selected(epoch)
            else:
                self.pending_path.unlink()

    # --- the run -------------------------------------------------------------------------------------
    def run(self, body: Body, wait: bool = True) -> dict:
        """Run `body` for this job unless it is done; returns the job's summary. Raises Busy when `wait` is
        False and another process holds the job."""
        if not self.lock.acquire(blocking=wait):
            raise Busy(f"{self.job.display_name} is running in process {self.lock.holder()}")
        try:
            done = self.load_done()
            if done is not None:
                checkpoints.remove(self.ckpt_path)
                log.info("[%s] already done (%s); reusing its results", self.job.display_name, self.job.run_key)
                return done
            resume = checkpoints.load_latest(self.ckpt_path) if body.resumable else None
            self._clean_leftovers(resume)
            return self._run(body, resume)
        finally:
            self.lock.release()

    def _run(self, body: Body, resume: dict | None) -> dict:
        params, tags = body.prepare()
        run_id = (resume or {}).get("run_id") or self.tracker.find_unfinished(self.job.run_key)
        if run_id and _data_changed(self.tracker.run_params(run_id), params):
            # The data changed under the same paths since the interrupted attempt: its checkpoint and run
            # describe other data. Keep that run (marked), start over on the data as it is now.
            self.tracker.set_status(run_id, "FAILED", {"bench.invalidated": "data changed before the resume"})
            log.warning("[%s] the data changed since the interrupted attempt; starting the job over",
                        self.job.display_name)
            checkpoints.remove(self.ckpt_path)
            resume, run_id = None, None
        # What this attempt starts from, kept on the run and in done.json: a restart looks like a resume otherwise.
        self.resumed_from = resumed_from(resume)
        self.tracker.start(self.job, params, {**tags, "bench.kind": body.kind, "bench.resumed_from": self.resumed_from},
                           resume_run_id=run_id)
        if self.tracker.run_id != run_id:
            import yaml

            self.tracker.log_text(yaml.safe_dump({"job": self.job.semantic(), "runtime": self.job.runtime},
                                                 sort_keys=True), "config.yaml")
        ctx = JobContext(self, resume, self._resume_file() if resume is not None else None)
        try:
            with terminate_as_interrupt():
                result = body.execute(ctx)
        except KeyboardInterrupt:
            self.tracker.set_tags({"bench.attempt_steps": ctx.steps})
            self.tracker.finish("KILLED")
            raise
        except BaseException as exc:
            self.tracker.set_tags({"bench.attempt_steps": ctx.steps})
            self._fail(exc)
            raise
        self.attempt_steps = ctx.steps
        self.tracker.set_tags({"bench.attempt_steps": ctx.steps})
        if result.stopped:
            self.tracker.finish("KILLED")
            return result.summary
        return self._finish(result)

    def _fail(self, exc: BaseException) -> None:
        try:
            self.tracker.set_tags({"bench.error": f"{type(exc).__name__}: {exc}"[:5000]})
        finally:
            self.tracker.finish("FAILED")

    def _finish(self, result: Result) -> dict:
        steps = max(1, len(result.history))
        self.tracker.log_metrics(result.summary, step=steps if self._trains else 0)
        if result.history:
            self.tracker.log_text("\n".join(json.dumps(h, sort_keys=True) for h in result.history), "metrics.jsonl")
        done = {**result.summary, "run_key": self.job.run_key, "run_id": self.tracker.run_id, "time": time.time(),
                "resumed_from": self.resumed_from, "attempt_steps": self.attempt_steps}
        if self._trains and self.selected_path.is_file():
            done["selected_sha256"] = file_sha256(self.selected_path)
            self.tracker.set_tags({"bench.selected_sha256": done["selected_sha256"]})
        self.tracker.finish("FINISHED")
        write_json_atomic(done, self.done_path)
        checkpoints.remove(self.ckpt_path)  # optimizer state is no longer needed; selected.pt keeps the weights
        self.reporter.report({**(result.history[-1] if result.history else {}), "done": True}, steps)
        return done


def resumed_from(resume: dict | None) -> str:
    """'epoch E step S' (the checkpoint an attempt resumed from) or 'fresh'."""
    if resume is None:
        return "fresh"
    return f"epoch {resume['epoch']} step {resume.get('step', '?')}"


def _data_changed(recorded: dict, params: dict) -> bool:
    key = "data.fingerprint"
    return key in recorded and key in params and recorded[key] != str(params[key])


def _saved_epoch(path: Path) -> int | None:
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])
    except Exception:  # a torn file: it was never committed
        return None




def train_one(job, tracker=None, reporter=None, wait: bool = True) -> dict:
    """Train and evaluate one job under its lifecycle; returns its summary (selected epoch's metrics under
    `sel/`). A done job returns its recorded summary; an interrupted one resumes from its checkpoint."""
    from bench.train.engine import TrainBody

    return JobLifecycle(job, tracker, reporter).run(TrainBody(job), wait=wait)
