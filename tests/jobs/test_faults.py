"""Kills at random-looking but reproducible moments: every rerun ends exactly where an uninterrupted run
ends, with the same per-epoch history in MLflow, one FINISHED run per job, nothing RUNNING, no temp files."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import assert_same_weights
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow  # subprocess kills

HERE = Path(__file__).resolve().parents[1]  # tests/: the scripts tests run
TINY = ["--model", "bench-tiny", "--pretrained", "none", "--workers", "0", "--set", "epochs=2", "--set",
        "batch_size=8", "--set", "warmup=2", "--set", "lr=1e-3"]
VOLATILE = ("time/", "train/images_per_s", "system/")


TEMPLATE: list[Path] = []  # a migrated MLflow store, copied into each home (creating one takes seconds)


def bench(home: Path, args: list[str], fault: tuple[str, int] | None = None) -> subprocess.CompletedProcess:
    if TEMPLATE and not (home / "mlflow.db").exists():
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(TEMPLATE[0], home / "mlflow.db")
    env = {**os.environ, "BENCH_HOME": str(home), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    point, n = fault or ("none", 0)
    cmd = [sys.executable, str(HERE / "fault_driver.py"), point, str(n), "--", *args] if fault else \
        [sys.executable, "-m", "bench", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def record(home: Path) -> dict:
    """{run_key: {"status": [...], "sel": {...}, "history": {metric: [(step, value)]}, "resumed_from": str,
    "attempt_steps": int}} from MLflow (the last three from the FINISHED run)."""
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    exp = client.get_experiment_by_name("folder")
    out: dict = {}
    for run in client.search_runs([exp.experiment_id]):
        key = run.data.tags["bench.run_key"]
        entry = out.setdefault(key, {"status": [], "sel": {}, "history": {}})
        entry["status"].append(run.info.status)
        if run.info.status != "FINISHED":
            continue
        entry["sel"] = {k: v for k, v in run.data.metrics.items() if k.startswith("sel/") and not k.startswith(("sel/time",))
                        and "images_per_s" not in k}
        entry["resumed_from"] = run.data.tags.get("bench.resumed_from")
        entry["attempt_steps"] = int(run.data.tags.get("bench.attempt_steps", -1))
        for k in run.data.metrics:
            if not k.startswith(VOLATILE) and not k.startswith("sel/"):
                entry["history"][k] = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, k))
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory, mlflow_template):
    from bench.datasets.fake import make_folder_tree

    TEMPLATE[:] = [mlflow_template]
    root = tmp_path_factory.mktemp("faults")
    data = make_folder_tree(root / "data", n_classes=3, per_split={"train": 8, "val": 4, "test": 4, "ood": 4})
    config = root / "run.yaml"
    config.write_text(yaml.safe_dump({"wiseft_alphas": [0.0, 0.5, 1.0]}))
    args = ["run", "--folder", str(data), "--methods", "zeroshot,ft", "--wise-ft", "--config", str(config), *TINY]
    ref_home = root / "reference"
    done = bench(ref_home, args)
    assert done.returncode == 0, done.stderr[-3000:]
    return args, record(ref_home), root


@pytest.mark.parametrize("point,n", [("step", 4), ("eval", 4), ("checkpoint-write", 2), ("wiseft", 2),
                                     ("done-marker", 2), ("after-job", 1)])
def test_sigkill_then_rerun_matches_an_uninterrupted_run(setup, point, n):
    args, reference, root = setup
    home = root / f"kill-{point}"
    killed = bench(home, args, fault=(point, n))
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-2000:])
    resumed = bench(home, args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got = record(home)
    assert set(got) == set(reference)
    for key, ref in reference.items():
        assert got[key]["status"] == ["FINISHED"], (key, got[key])  # the interrupted run itself, reopened
        assert got[key]["sel"] == pytest.approx(ref["sel"]), key
        assert got[key]["history"] == ref["history"], key
    assert not [p for p in (home / "jobs").rglob(".*.tmp")], "temporary files left behind"
    if point in ("step", "checkpoint-write"):  # killed in ft's epoch 2: the rerun resumes after epoch 1
        assert_resumed_after_epoch_1(home, root / "reference", got, reference)


def assert_resumed_after_epoch_1(home, reference_home, got, reference):
    """The trained job (ft, 2 epochs) resumed from its epoch-1 checkpoint, executed only epoch 2's steps and
    ended with the reference's selected weights: a restart from scratch would match the metrics too."""
    (key,) = [k for k, e in reference.items() if e["attempt_steps"] > 0]
    per_epoch = reference[key]["attempt_steps"] // 2
    assert reference[key]["resumed_from"] == "fresh" and per_epoch > 0
    assert got[key]["resumed_from"] == f"epoch 1 step {per_epoch}", got[key]["resumed_from"]
    assert got[key]["attempt_steps"] == per_epoch
    assert_same_weights(home / "jobs" / key / "selected.pt", reference_home / "jobs" / key / "selected.pt")


def test_sigterm_ends_the_run_killed_and_the_rerun_resumes_it(setup):
    args, reference, root = setup
    home = root / "sigterm"
    stopped = bench(home, args, fault=("sigterm-step", 4))
    assert stopped.returncode == 143 and "terminated" in stopped.stderr and "Traceback" not in stopped.stderr
    ft = [k for k, e in record(home).items() if "KILLED" in e["status"]]
    assert len(ft) == 1 and record(home)[ft[0]]["status"] == ["KILLED"]
    assert bench(home, args).returncode == 0
    got = record(home)
    assert got[ft[0]]["status"] == ["FINISHED"]  # the same run, reopened
    assert got[ft[0]]["sel"] == pytest.approx(reference[ft[0]]["sel"])
    assert_resumed_after_epoch_1(home, root / "reference", got, reference)
