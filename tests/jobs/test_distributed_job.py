"""A 2-process job (`bench run --gpus 2 --device cpu`: torch elastic, gloo) through the CLI: killed mid-job
(SIGKILL to every process, as a lost node), it resumes from rank 0's checkpoint and ends with the metrics of an
uninterrupted 2-process job and exactly one FINISHED MLflow run; a rank that fails fails the job cleanly."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from test_faults import TEMPLATE, bench, record

pytestmark = pytest.mark.slow  # several processes, kills

ARGS = ["--model", "bench-tiny", "--pretrained", "none", "--workers", "0", "--device", "cpu", "--gpus", "2",
        "--set", "epochs=6", "--set", "batch_size=8", "--set", "warmup=2", "--set", "lr=1e-3"]


@pytest.fixture(scope="module")
def data(tmp_path_factory, mlflow_template):
    from bench.datasets.fake import make_folder_tree

    TEMPLATE[:] = [mlflow_template]
    root = tmp_path_factory.mktemp("dist")
    return root, make_folder_tree(root / "data", n_classes=3, per_split={"train": 12, "val": 4, "test": 4, "ood": 4})


def _checkpointed(home) -> bool:
    """An epoch is done: a checkpoint (or, mid-rename, its previous copy) exists."""
    return any((home / "jobs").glob("*/checkpoint.pt*")) if (home / "jobs").is_dir() else False


def _start_until_checkpoint(home, args) -> subprocess.Popen:
    """`bench ARGS` on a fresh `home` in a session of its own, returned once its first epoch is checkpointed."""
    home.mkdir()
    shutil.copy(TEMPLATE[0], home / "mlflow.db")
    env = {**os.environ, "BENCH_HOME": str(home), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen([sys.executable, "-m", "bench", *args], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not _checkpointed(home) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    return proc


def test_killed_two_process_job_resumes_to_the_uninterrupted_result(data):
    root, folder = data
    args = ["run", "--folder", str(folder), "--methods", "flyp", *ARGS]
    straight = bench(root / "straight", args)
    assert straight.returncode == 0, straight.stderr[-3000:]
    reference = record(root / "straight")
    (key, ref), = reference.items()
    assert ref["status"] == ["FINISHED"] and ref["sel"]

    home = root / "killed"
    proc = _start_until_checkpoint(home, args)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks, with no chance to clean up
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read()[-3000:]
    assert not (home / "jobs" / key / "done.json").exists(), "the job finished before the kill"

    resumed = bench(home, args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming after epoch" in resumed.stdout
    got = record(home)[key]
    assert got["status"] == ["FINISHED"]  # the interrupted run itself, reopened by rank 0
    assert got["sel"] == pytest.approx(ref["sel"])
    assert got["history"] == ref["history"]


def test_a_failing_rank_fails_the_job_and_the_run(data, monkeypatch):
    root, folder = data
    home = root / "fails"
    # batch 9 cannot split over 2 processes: every rank raises the same BenchError at the start of training
    out = bench(home, ["run", "--folder", str(folder), "--methods", "ft", *ARGS, "--set", "batch_size=9"])
    assert out.returncode != 0
    assert "multiple of 2" in out.stdout + out.stderr
    (key, entry), = [(k, e) for k, e in record(home).items()]
    assert entry["status"] == ["FAILED"]


def _follower_pids(root_pid: int, home) -> list[int]:
    """The elastic workers in the job's process group other than rank 0 (which holds the job's lock file)."""
    out = []
    for proc in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(proc)) != root_pid or b"spawn_main" not in open(f"/proc/{proc}/cmdline", "rb").read():
                continue
            fds = [os.readlink(f"/proc/{proc}/fd/{fd}") for fd in os.listdir(f"/proc/{proc}/fd")]
        except OSError:
            continue
        if not any(str(home / "locks") in fd for fd in fds):
            out.append(int(proc))
    return out


def test_a_dead_rank_fails_the_run_and_the_rerun_resumes_it(data):
    root, folder = data
    home = root / "dead-rank"
    args = ["run", "--folder", str(folder), "--methods", "ft", *ARGS]
    proc = _start_until_checkpoint(home, args)
    followers = _follower_pids(proc.pid, home)
    assert proc.poll() is None, "the job finished before the kill"
    assert len(followers) == 1, followers
    os.kill(followers[0], signal.SIGKILL)  # rank 1 alone: an OOM kill, a lost GPU
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 2, out[-3000:]
    assert "rank 1 of 2 failed" in out
    (key, entry), = record(home).items()
    assert entry["status"] == ["FAILED"]

    resumed = bench(home, args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming after epoch" in resumed.stdout
    assert record(home)[key]["status"] == ["FINISHED"]  # the failed run, reopened and finished
