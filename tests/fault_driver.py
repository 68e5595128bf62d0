"""Runs `bench` in a subprocess with a fault armed: `python fault_driver.py POINT N -- bench args...`.

The process SIGKILLs itself the Nth time it reaches POINT (nothing is cleaned up, exactly like an OOM kill or
a lost node) or, for POINT=sigterm-step, sends itself SIGTERM (preemption). Points are patched in from here,
so the product carries no fault hooks. Two points are not kills: `mlflow-commit` kills inside an MLflow write
(the SQL of the transaction sent, its commit not: SQLite is left with a hot journal), and `full-disk` makes the
disk full from the Nth checkpoint on (every atomic write then fails with ENOSPC).
"""
from __future__ import annotations

import os
import signal
import sys


def _countdown(n: int, sig=signal.SIGKILL):
    state = {"left": n}

    def hit():
        state["left"] -= 1
        if state["left"] == 0:
            os.kill(os.getpid(), sig)

    return hit


def arm(point: str, n: int) -> None:
    import bench.jobs.checkpoints as checkpoints
    import bench.train.evaluate as evaluate
    import bench.jobs.lifecycle as lifecycle
    from bench.methods.ft import FineTune
    from bench.tracking.runs import MlflowTracker

    hit = _countdown(n, signal.SIGTERM if point == "sigterm-step" else signal.SIGKILL)
    if point in ("step", "sigterm-step"):
        original = FineTune.training_step

        def step(self, *a, **k):
            hit()
            return original(self, *a, **k)

        FineTune.training_step = step
    elif point == "eval":
        original_predict = evaluate.predict_many

        def predict_many(*a, **k):
            hit()
            return original_predict(*a, **k)

        evaluate.predict_many = predict_many
    elif point == "checkpoint-write":
        original_write = checkpoints.atomic_write_bytes

        def write(path, fn):
            def torn(f):
                fn(f)
                f.flush()
                f.truncate(f.tell() // 2)  # half a file in the temporary, then the kill
                f.flush()
                hit()

            return original_write(path, torn)

        checkpoints.atomic_write_bytes = write
    elif point == "wiseft":
        original_log = MlflowTracker.log_metrics

        def log_metrics(self, metrics, step):
            original_log(self, metrics, step)
            if "alpha" in metrics:
                hit()

        MlflowTracker.log_metrics = log_metrics
    elif point == "done-marker":  # after the run is FINISHED, before done.json
        original_json = lifecycle.write_json_atomic

        def write_json(obj, path):
            if path.name == "done.json":
                hit()
            return original_json(obj, path)

        lifecycle.write_json_atomic = write_json
    elif point == "after-job":  # a job done and recorded, the next not started
        original_run = lifecycle.JobLifecycle.run

        def run(self, *a, **k):
            out = original_run(self, *a, **k)
            hit()
            return out

        lifecycle.JobLifecycle.run = run
    elif point == "mlflow-commit":
        from sqlalchemy.orm import Session

        original_commit = Session.commit

        def commit(self):
            self.flush()  # the transaction's writes reach SQLite (journal and pages); the commit never does
            hit()
            return original_commit(self)

        Session.commit = commit
    elif point == "full-disk":
        _full_disk_from(n)
    else:
        raise SystemExit(f"unknown fault point {point}")


def _full_disk_from(n: int) -> None:
    import errno

    import bench.fsutil as fsutil
    import bench.jobs.checkpoints as checkpoints

    state = {"left": n}
    original = fsutil.atomic_write_bytes

    def write(path, fn):
        if state["left"] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return original(path, fn)

    def checkpoint_write(path, fn):
        state["left"] -= 1
        return write(path, fn)

    fsutil.atomic_write_bytes = write  # done markers, weights, reports (they call it through the module)
    checkpoints.atomic_write_bytes = checkpoint_write


if __name__ == "__main__":
    point, n = sys.argv[1], int(sys.argv[2])
    args = sys.argv[sys.argv.index("--") + 1:]
    arm(point, n)
    from bench.cli.main import main

    sys.exit(main(args))
