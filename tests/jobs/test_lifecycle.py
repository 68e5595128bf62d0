"""The job lifecycle's crash safety: corrupt checkpoints, markers and weights are detected and rebuilt,
held jobs are never run twice, and two `bench run` processes on one fresh BENCH_HOME share the work."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from bench.jobs import checkpoints
from bench.jobs.lifecycle import train_one
from bench.jobs.state import RUNNING, job_states
from bench.jobs.lifecycle import Busy, JobLifecycle
from bench.methods.wiseft import derive_jobs
from bench.tracking.runs import MlflowTracker
from bench.tracking.store import tracking_uri
from bench.jobs.wiseft import run_wiseft
from helpers import StopAfter, assert_same_weights, check_resumed, make_job
from helpers import selected as sel


def statuses(run_key):
    client = MlflowClient(tracking_uri())
    exp = client.get_experiment_by_name("tests")
    return sorted(r.info.status for r in client.search_runs([exp.experiment_id])
                  if r.data.tags.get("bench.run_key") == run_key)


def test_checkpoint_round_trip_and_refusal_of_damaged_files(tmp_path):
    path = tmp_path / "c.pt"
    checkpoints.save({"epoch": 1}, path)
    checkpoints.save({"epoch": 2}, path)
    assert checkpoints.load(path)["epoch"] == 2 and checkpoints.load(checkpoints.prev_path(path))["epoch"] == 1
    data = path.read_bytes()
    for damaged in (data[: len(data) // 2], b"", data[:-1] + bytes([data[-1] ^ 1])):
        path.write_bytes(damaged)
        with pytest.raises(checkpoints.CorruptCheckpoint):
            checkpoints.load(path)


def test_truncated_checkpoint_falls_back_to_the_previous_one(bench_home, folder_root, caplog, monkeypatch, tmp_path):
    job = make_job(folder_root, "ft", epochs=3)
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "straight"))
    straight = train_one(job)
    straight_weights = job.run_dir / "selected.pt"
    monkeypatch.setenv("BENCH_HOME", str(bench_home))
    with pytest.raises(KeyboardInterrupt):
        train_one(job, MlflowTracker("tests"), StopAfter(2))
    ckpt = job.run_dir / "checkpoint.pt"
    assert checkpoints.load(checkpoints.prev_path(ckpt))["epoch"] == 1
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # a torn write of epoch 2
    resumed = train_one(job, MlflowTracker("tests"))
    assert "unusable" in caplog.text and list(job.run_dir.glob("checkpoint.pt.corrupt-*"))
    check_resumed(resumed, straight, epoch=1, epochs=3)  # from .prev's epoch 1, not from scratch
    assert sel(resumed) == pytest.approx(sel(straight))
    assert_same_weights(job.run_dir / "selected.pt", straight_weights)
    assert statuses(job.run_key) == ["FINISHED"]


def test_no_good_checkpoint_restarts_the_job_cleanly(bench_home, folder_root):
    job = make_job(folder_root, "ft")
    with pytest.raises(KeyboardInterrupt):
        train_one(job, MlflowTracker("tests"), StopAfter(1))
    (job.run_dir / "checkpoint.pt").write_bytes(b"")
    summary = train_one(job, MlflowTracker("tests"))
    assert summary["sel/epochs_run"] == 2 and statuses(job.run_key) == ["FINISHED"]
    assert summary["resumed_from"] == "fresh" and summary["attempt_steps"] == 2 * 5  # 40 images, batch 8


def test_corrupt_or_lost_done_marker_is_rebuilt_from_mlflow(bench_home, folder_root):
    job = make_job(folder_root, "ft")
    first = train_one(job, MlflowTracker("tests"))
    for damage in ("{not json", None):
        if damage is None:
            (job.run_dir / "done.json").unlink()
        else:
            (job.run_dir / "done.json").write_text(damage)
        again = train_one(job, MlflowTracker("tests"))  # no retraining: the FINISHED run vouches for it
        assert sel(again) == sel(first) and statuses(job.run_key) == ["FINISHED"]
        assert json.loads((job.run_dir / "done.json").read_text())["run_id"] == first["run_id"]


@pytest.mark.parametrize("damage", ["corrupt", "deleted"])
def test_wiseft_retrains_a_base_whose_selected_weights_are_lost(bench_home, folder_root, damage):
    base = make_job(folder_root, "ft")
    first = train_one(base, MlflowTracker("tests"))
    selected = base.run_dir / "selected.pt"
    if damage == "corrupt":
        selected.write_bytes(selected.read_bytes()[:5000])
    else:
        selected.unlink()
    out = run_wiseft(base, derive_jobs(base, [1.0]), lambda j: MlflowTracker("tests"))
    assert statuses(base.run_key) == ["FAILED", "FINISHED"]  # the old run kept, marked invalidated
    client = MlflowClient(tracking_uri())
    old = client.get_run(first["run_id"])
    assert old.info.status == "FAILED" and "selected.pt" in old.data.tags["bench.invalidated"]
    assert {k: v for k, v in sel(out[0]).items() if k not in ("sel/epoch", "sel/epochs_run")} == pytest.approx(
        {k: v for k, v in sel(first).items() if k not in ("sel/epoch", "sel/epochs_run")})


def test_a_job_held_by_another_process_is_reported_running_and_never_run_twice(bench_home, folder_root):
    job = make_job(folder_root, "zeroshot")
    lock = JobLifecycle(job).lock.path
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)", str(lock)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert job_states([job]) == [RUNNING]
        with pytest.raises(Busy):
            train_one(job, MlflowTracker("tests"), wait=False)
        assert statuses(job.run_key) == []
    finally:
        holder.kill()
        holder.wait()
    train_one(job, MlflowTracker("tests"), wait=False)  # the kernel dropped the dead holder's lock
    assert statuses(job.run_key) == ["FINISHED"]


def _wait_for(path, text: str, proc, timeout: float = 300) -> str:
    """The log at `path` (of `proc`) once it contains `text`."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        log = path.read_text() if path.is_file() else ""
        if text in log:
            return log
        if proc.poll() is not None:
            raise AssertionError(f"{text!r} never came: the process exited {proc.returncode}:\n{log[-3000:]}")
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path} after {timeout:.0f} s:\n{log[-3000:]}")


def _stop_outside_a_write(proc, db) -> None:
    """SIGSTOP `proc` at a moment it holds no SQLite write lock (else the other process would wait on it)."""
    import signal
    import sqlite3
    import time

    while True:
        os.kill(proc.pid, signal.SIGSTOP)
        con = sqlite3.connect(db, timeout=0)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.rollback()
            return
        except sqlite3.OperationalError:  # mid-transaction: let it finish
            os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.05)
        finally:
            con.close()


@pytest.mark.slow  # two bench processes
def test_two_concurrent_bench_runs_on_a_fresh_home_share_the_work(tmp_path, folder_root, monkeypatch):
    """A trains zeroshot and is frozen (SIGSTOP) inside ft, holding its lock; B, started then, finds zeroshot
    done, skips ft (held), trains flyp and waits for ft; A, thawed, finishes ft and reuses B's flyp. Each job is
    trained by exactly one process, both processes trained, one waited, and MLflow has one run per job."""
    import re
    import signal

    from bench.runtime.locks import job_lock

    home = tmp_path / "fresh"  # no mlflow.db yet: both processes race to create it
    monkeypatch.setenv("BENCH_HOME", str(home))
    env = {**os.environ, "BENCH_HOME": str(home), "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cfg = tmp_path / "a.yaml"
    cfg.write_text("wiseft_alphas: [0.5, 1.0]\n")
    args = [sys.executable, "-m", "bench", "run", "--folder", str(folder_root), "--methods", "zeroshot,ft,flyp",
            "--wise-ft", "--config", str(cfg), "--model", "bench-tiny", "--pretrained", "none", "--workers", "0",
            "--set", "epochs=2", "--set", "batch_size=8", "--set", "warmup=2", "--set", "lr=1e-3"]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]

    def start(log):
        with open(log, "w") as out:
            return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)

    a = start(logs[0])
    procs = [a]
    try:
        line = re.search(r"== job 2/3: (\S+) \((\w+)\)", _wait_for(logs[0], "== job 2/3", a)).group(0, 1, 2)
        ft_name, ft_key = line[1], line[2]
        assert "-ft-" in ft_name
        while not job_lock(ft_key).busy():  # A is inside ft's lifecycle
            assert a.poll() is None, logs[0].read_text()[-3000:]
        _stop_outside_a_write(a, home / "mlflow.db")
        procs.append(start(logs[1]))
        _wait_for(logs[1], "== waiting for", procs[1])  # B trained what it could and now waits for ft
    finally:
        os.kill(a.pid, signal.SIGCONT)
        for p in procs:
            p.wait(timeout=600)
    text = [log.read_text() for log in logs]
    assert [p.returncode for p in procs] == [0, 0], [t[-2000:] for t in text]

    def trained(t):  # jobs whose epochs this process ran
        return set(re.findall(r"\[(\S+)\] epoch 2/2 loss", t))

    flyp_name = ft_name.replace("-ft-", "-flyp-")
    assert trained(text[0]) == {ft_name} and trained(text[1]) == {flyp_name}  # both trained, never the same job
    assert f"{ft_name}: skipped for now" in text[1] and f"waiting for {ft_name}" in text[1]  # B waited for ft
    assert "zeroshot" in text[0].split("== job 2/3")[0] and "already done" in text[1]  # A did zeroshot, B reused it
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    found = client.search_runs([client.get_experiment_by_name("folder").experiment_id])
    keys = [r.data.tags["bench.run_key"] for r in found]
    assert len(keys) == len(set(keys)) == 3 + 2 * 2  # 3 jobs, 2 alphas over each of ft and flyp
    assert {r.info.status for r in found} == {"FINISHED"}
    for run in found:
        if run.data.tags["bench.kind"] == "job" and run.data.tags["bench.method"] != "zeroshot":
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
            assert steps == [1, 2]  # every epoch logged once
            assert run.data.tags["bench.resumed_from"] == "fresh"


def test_a_full_disk_while_checkpointing_is_one_clear_error_and_the_last_checkpoint_survives(tmp_path, monkeypatch):
    import errno

    from bench.errors import BenchError

    path = tmp_path / "checkpoint.pt"
    checkpoints.save({"epoch": 1}, path)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints, "atomic_write_bytes", full)
    with pytest.raises(BenchError, match="No space left .* rerun the same command"):
        checkpoints.save({"epoch": 2}, path)
    assert checkpoints.load_latest(path)["epoch"] == 1


def test_data_changed_before_the_resume_starts_the_job_over(bench_home, folder_root, tmp_path):
    import shutil

    from bench.spec.suites import folder_task

    data = tmp_path / "data"
    shutil.copytree(folder_root, data)
    job = make_job(data, "ft")
    with pytest.raises(KeyboardInterrupt):
        train_one(job, MlflowTracker("tests"), StopAfter(1))
    image = sorted((data / "train").rglob("*.png"))[0]
    image.write_bytes((data / "test").rglob("*.png").__next__().read_bytes())  # same path, other pixels
    changed = make_job(data, "ft")
    changed.task_spec = folder_task(str(data))[1]
    assert changed.run_key == job.run_key  # paths and hparams are the same job
    summary = train_one(changed, MlflowTracker("tests"))
    assert summary["sel/epochs_run"] == 2 and statuses(job.run_key) == ["FAILED", "FINISHED"]


def test_bench_run_carries_on_after_a_failed_job_and_exits_non_zero(bench_home, folder_root, monkeypatch, capsys):
    from bench.cli.main import main
    from bench.methods.ft import FineTune

    def boom(self, images, labels):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(FineTune, "training_step", boom)
    code = main(["run", "--folder", str(folder_root), "--methods", "zeroshot,ft,flyp", "--model", "bench-tiny",
                 "--pretrained", "none", "--workers", "0", "--set", "epochs=1", "--set", "batch_size=8",
                 "--set", "warmup=1"])
    err = capsys.readouterr().err
    assert code == 2 and "1 job(s) failed" in err and "Traceback" not in err
    client = MlflowClient(tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name("folder").experiment_id])
    by_method = {r.data.tags["bench.method"]: r for r in runs}
    assert {m: r.info.status for m, r in by_method.items()} == {"zeroshot": "FINISHED", "ft": "FAILED", "flyp": "FINISHED"}
    assert "injected failure" in by_method["ft"].data.tags["bench.error"]


def test_lost_marker_and_weights_retrain_and_invalidate_the_old_run(bench_home, folder_root):
    job = make_job(folder_root, "ft")
    first = train_one(job, MlflowTracker("tests"))
    (job.run_dir / "done.json").unlink()
    (job.run_dir / "selected.pt").unlink()
    again = train_one(job, MlflowTracker("tests"))
    assert again["run_id"] != first["run_id"] and statuses(job.run_key) == ["FAILED", "FINISHED"]
    assert sel(again) == sel(first)
