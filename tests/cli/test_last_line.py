"""The last line a user reads after a failed `bench run` is the failure (which job, why, the fix), one line,
with no traceback: after the report or its absence, for an image a DataLoader worker cannot decode and for a
disk that fills up."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import TESTS_DIR

pytestmark = pytest.mark.slow  # bench in a subprocess, with loader worker processes
TINY = ["--model", "bench-tiny", "--pretrained", "none", "--set", "epochs=1", "--set", "batch_size=8"]


def bench_lines(home, args, fault=None) -> tuple[int, list[str]]:
    """Exit code and what the terminal shows, stdout and stderr in the order they were written."""
    env = {**os.environ, "BENCH_HOME": str(home), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    head = [str(TESTS_DIR / "fault_driver.py"), *map(str, fault), "--"] if fault else ["-m", "bench"]
    done = subprocess.run([sys.executable, *head, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=300)
    return done.returncode, done.stdout.strip().splitlines()


def tree(tmp_path):
    from bench.datasets.fake import make_folder_tree

    return make_folder_tree(tmp_path / "data", n_classes=2, per_split={"train": 6, "val": 2, "test": 2})


def test_an_image_a_loader_worker_cannot_decode_ends_the_command_in_one_line(tmp_path):
    data = tree(tmp_path)
    bad = sorted((data / "train").rglob("*.png"))[0]
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # the header reads; the pixels do not
    code, lines = bench_lines(tmp_path / "home", ["run", "--folder", str(data), "--methods", "ft", "--workers", "1", *TINY])
    text = "\n".join(lines)
    assert code == 2 and "Traceback" not in text and "DataLoader worker" not in text, text[-3000:]
    assert lines[-1].startswith("bench: error: 1 job(s) failed: data-ft-s0 (")
    assert f"Cannot read image {bad}: image file is truncated" in lines[-1] and "rerun the same command" in lines[-1]
    assert any(line.startswith("No report: No FINISHED bench runs") for line in lines[:-1])


def test_a_disk_that_fills_up_ends_the_command_with_the_failure_after_the_report_it_could_not_write(tmp_path):
    data = tree(tmp_path)
    args = ["run", "--folder", str(data), "--methods", "zeroshot,ft", "--workers", "0", *TINY]
    code, lines = bench_lines(tmp_path / "home", args, fault=("full-disk", 1))  # full from the first checkpoint
    text = "\n".join(lines)
    assert code == 2 and "Traceback" not in text, text[-3000:]
    assert any(line.startswith("No report: cannot write it to ") and "No space left" in line for line in lines)
    assert lines[-1].startswith("bench: error: 1 job(s) failed: data-ft-s0 (")
    assert "No space left on the device for the checkpoint" in lines[-1] and "rerun the same command" in lines[-1]
