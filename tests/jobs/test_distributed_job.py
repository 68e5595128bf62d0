"""A 2-process job (`bench run --gpus 2 --device cpu`: torch elastic, gloo) through the CLI: killed mid-job
(SIGKILL to every process, as a lost node), it resumes from rank 0's checkpoint and ends with the metrics of an
uninterrupted 2-process job and exactly one FINISHED MLflow run; a rank that fails fails the job cleanly, naming
the rank; and a 2-process job matches a 1-process job on the same data epoch by epoch (the engine's own loop)."""
from __future__ import annotations

import os
import re
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


def _uniform_colour_folder(root):
    """A folder task whose images are each one colour: open_clip's train transform (RandomResizedCrop, drawn
    from the global RNG, which ranks consume in another order than one process) maps a one-colour image to the
    same tensor whatever it draws, so augmentation cannot make 1 and 2 processes differ. 4 classes x 10 train
    images: 5 global batches of 8 in each epoch, none partial."""
    from PIL import Image

    for split, n in {"train": 10, "val": 2, "test": 2, "ood": 2}.items():
        for c in range(4):
            d = root / split / f"class_{c}"
            d.mkdir(parents=True)
            for i in range(n):
                shade = (40 * c + 7 * i + (3 if split == "ood" else 0)) % 256
                Image.new("RGB", (32, 32), (shade, 255 - shade, (60 * c) % 256)).save(d / f"{i}.png")
    return root


def test_two_process_job_matches_the_one_process_job_epoch_by_epoch(data):
    """The engine's own distributed loop (sampler shares, gradient average over ranks, the loss summed over
    ranks and divided by the global sample count) through `bench run --gpus 2` against `--gpus 1` on the same
    data: every epoch's metrics (train/loss included) and the selected weights agree to float tolerance."""
    import torch

    root, _ = data
    folder = _uniform_colour_folder(root / "uniform")
    args = ["run", "--folder", str(folder), "--methods", "ft", *ARGS, "--set", "epochs=2"]
    one_args = [a if a != "2" or args[i - 1] != "--gpus" else "1" for i, a in enumerate(args)]
    runs = {}
    for name, argv in (("two", args), ("one", one_args)):
        out = bench(root / name, argv)
        assert out.returncode == 0, out.stderr[-3000:]
        (key, runs[name]), = record(root / name).items()
    two, one = runs["two"], runs["one"]
    assert len(one["history"]["train/loss"]) == 2 and one["history"].keys() == two["history"].keys()
    for metric, points in one["history"].items():
        assert [s for s, _ in two["history"][metric]] == [s for s, _ in points], metric
        assert [v for _, v in two["history"][metric]] == pytest.approx([v for _, v in points], rel=1e-4, abs=1e-6), \
            metric
    w1, w2 = (torch.load(root / n / "jobs" / key / "selected.pt", weights_only=False) for n in ("one", "two"))
    assert w1["epoch"] == w2["epoch"]
    for k, v in w1["state_dict"].items():
        other = w2["state_dict"][k]
        if k.endswith("attn.in_proj_bias"):
            # The key bias's gradient is zero in exact arithmetic (softmax ignores a shift shared by all keys):
            # AdamW turns its rounding noise into lr-sized steps, so only the query and value parts are compared.
            d = v.numel() // 3
            v, other = torch.cat([v[:d], v[2 * d:]]), torch.cat([other[:d], other[2 * d:]])
        torch.testing.assert_close(other, v, rtol=1e-4, atol=1e-6, msg=k)


def assert_resumed(got: dict, ref: dict, epochs: int) -> None:
    """The rerun resumed from a checkpoint (epoch E, step S) and executed only the steps after it."""
    per_epoch = ref["attempt_steps"] // epochs
    epoch, step = (int(x) for x in re.fullmatch(r"epoch (\d+) step (\d+)", got["resumed_from"]).groups())
    assert ref["resumed_from"] == "fresh" and per_epoch > 0 and 1 <= epoch <= epochs and step == epoch * per_epoch
    assert got["attempt_steps"] == (epochs - epoch) * per_epoch, (got["attempt_steps"], got["resumed_from"])


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
    assert_resumed(got, ref, epochs=6)
    assert got["sel"] == pytest.approx(ref["sel"])
    assert got["history"] == ref["history"]


def test_a_failing_rank_fails_the_job_and_the_error_names_it(data):
    """Rank 1 alone reads a corrupt image (its share of epoch 0's first batch; rank 0 never reads that file in
    epoch 0): the job fails, the error names rank 1 and the file, and the run ends FAILED."""
    from bench.datasets.fake import make_folder_tree
    from bench.datasets.folder import FolderDataset
    from bench.runtime.distributed import Rank
    from bench.runtime.host import derive_seed
    from bench.train.engine import train_sampler

    root, _ = data
    folder = make_folder_tree(root / "corrupt", n_classes=3, per_split={"train": 12, "val": 4, "test": 4, "ood": 4})
    train = FolderDataset(folder).split("train")
    shares = []
    for r in (0, 1):  # what each rank reads in epoch 0, as the engine draws it
        sampler = train_sampler(train, 8, Rank(r, 2))
        sampler.seed = derive_seed(0, "epoch", 0)
        shares.append(list(sampler))
    bad = train.samples[shares[1][0]][0]
    assert shares[1][0] not in shares[0]
    bad.write_bytes(bad.read_bytes()[:60])  # the header survives (the preflight check passes), the pixels do not
    home = root / "fails"
    out = bench(home, ["run", "--folder", str(folder), "--methods", "ft", *ARGS])
    text = out.stdout + out.stderr
    assert out.returncode == 2, text[-3000:]
    assert "rank 1 of 2 failed" in text and f"Cannot read image {bad}" in text, text[-3000:]
    assert "rank 0 of 2 failed" not in text
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
