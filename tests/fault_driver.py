"""Runs `bench` in a subprocess with a fault armed: `python fault_driver.py POINT N -- bench args...`.

The process SIGKILLs itself the Nth time it reaches POINT (nothing is cleaned up, exactly like an OOM kill or
a lost node) or, for POINT=sigterm-step, sends itself SIGTERM (preemption). Points are patched in from here,
so the product carries no fault hooks. `mlflow-commit` kills inside the Nth MLflow write, where SQLite's own
commit would be (the transaction's SQL sent, its journal synced and pages in the file, no commit: a hot
journal); `full-disk` kills nothing but makes the disk full from the Nth checkpoint on (ENOSPC on every
atomic write).

`python fault_driver.py --serve` is a fork server for many short runs (tests/jobs/test_soak.py): it imports
torch, open_clip, MLflow and bench once, then forks one child per JSON line on stdin ({"env", "args", "log",
"fault": [POINT, N] or null, "kill_after": seconds or null}). Each child leads its own process group, which a
fault or the timer SIGKILLs whole; the server answers each line with {"rc": exit code, or -signal}.
"""
from __future__ import annotations

import os
import signal
import sys


KILL_GROUP = False  # set in --serve children: a fault kills the child's whole process group (loader workers too)


def _countdown(n: int, sig=signal.SIGKILL):
    state = {"left": n}

    def hit(before=None):
        state["left"] -= 1
        if state["left"] == 0:
            if before is not None:
                before()
            os.killpg(0, sig) if KILL_GROUP else os.kill(os.getpid(), sig)

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
        writes = {"n": 0}

        def write(path, fn):
            def torn(f):
                fn(f)
                f.flush()
                writes["n"] += 1
                if writes["n"] == n:  # only the Nth write is torn: the earlier checkpoints stay whole
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

        def spill(con):
            """Where SQLite's own commit would be when killed: the journal synced (hot) and changed pages
            already in the database file. A one-page cache and a read of every table push them out."""
            con.execute("PRAGMA cache_size=1")
            for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
                con.execute(f'SELECT * FROM "{table}"').fetchall()

        def commit(self):
            self.flush()  # the transaction's writes reach SQLite; the commit never does
            con = self.connection().connection.dbapi_connection if self.in_transaction() else None
            if getattr(con, "in_transaction", False):  # counted only with uncommitted writes (MLflow commits reads too)
                hit(before=lambda: spill(con))
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


def serve() -> None:
    import json
    import time

    import bench.cli.main  # noqa: F401  (what every child needs, imported once; nothing here runs torch)
    import bench.jobs.wiseft  # noqa: F401
    import bench.tracking.runs  # noqa: F401
    import matplotlib.pyplot  # noqa: F401
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    import open_clip  # noqa: F401

    for line in sys.stdin:
        req = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _child(req)
        deadline = time.monotonic() + req["kill_after"] if req.get("kill_after") else None
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if deadline is not None and time.monotonic() >= deadline:
                os.killpg(pid, signal.SIGKILL)
                deadline = None
            time.sleep(0.02)
        os.killpg(pid, signal.SIGKILL) if _group_alive(pid) else None  # no orphaned loader workers
        print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _child(req) -> None:
    global KILL_GROUP
    code = 1
    try:
        os.setpgid(0, 0)
        KILL_GROUP = True
        fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.environ.update(req["env"])
        if req.get("fault"):
            arm(req["fault"][0], int(req["fault"][1]))
        from bench.cli.main import main

        code = main(req["args"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    serve()
elif __name__ == "__main__":
    point, n = sys.argv[1], int(sys.argv[2])
    args = sys.argv[sys.argv.index("--") + 1:]
    arm(point, n)
    from bench.cli.main import main

    sys.exit(main(args))
