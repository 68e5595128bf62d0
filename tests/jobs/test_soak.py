"""Soak: a small study SIGKILLed (whole process group) again and again at seeded random moments, in training,
evaluation, checkpoint writes, WiSE-FT, MLflow commits (SQLite left with a hot journal) and at seeded random
times, rerun after each kill; every round ends exactly where an uninterrupted study ends.

The runs are forked from one server process that imported torch, open_clip and MLflow once
(tests/fault_driver.py --serve): a kill-and-rerun then costs the work it redoes, not seconds of imports.
Run with `-s` to see where each kill landed and what the reruns did.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from collections import Counter

import pytest
import torch
import yaml

from helpers import TESTS_DIR

pytestmark = pytest.mark.slow  # a fork server and dozens of SIGKILLs

TINY = ["--model", "bench-tiny", "--pretrained", "none", "--workers", "0", "--set", "epochs=2", "--set",
        "batch_size=8", "--set", "warmup=2", "--set", "lr=1e-3"]
VOLATILE = ("time/", "train/images_per_s", "system/")
SEED, KILLS, KILLS_PER_ROUND, MAX_ATTEMPTS = 20, 21, 9, 60
# Fault points of tests/fault_driver.py, each with N drawn in 1..most: at most a rerun's hits, so most draws land.
POINTS = {"step": 3, "eval": 4, "checkpoint-write": 2, "wiseft": 3, "mlflow-commit": 40, "done-marker": 2,
          "after-job": 2}
MUST_LAND = {"step", "eval", "checkpoint-write", "wiseft", "mlflow-commit", "timer"}


def draw(rng: random.Random, landed: set) -> tuple[list | None, float | None]:
    """(fault point and N, or None; seconds before a timed kill, or None). Points that have not landed yet
    are drawn more often, so that a short soak still covers them all."""
    if rng.random() < 0.2:
        return None, round(rng.uniform(0.5, 8.0), 2)
    todo = sorted(MUST_LAND - landed - {"timer"})
    point = rng.choice(todo) if todo and rng.random() < 0.5 else rng.choice(sorted(POINTS))
    return [point, rng.randint(1, POINTS[point])], None


class ForkServer:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, str(TESTS_DIR / "fault_driver.py"), "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, home, args, log, fault=None, kill_after=None) -> int:
        env = {"BENCH_HOME": str(home), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
        self.proc.stdin.write(json.dumps({"env": env, "args": args, "log": str(log), "fault": fault,
                                          "kill_after": kill_after}) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer, "the fork server died"
        return json.loads(answer)["rc"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def record(home) -> dict:
    """{run_key: {"status": [...], "sel": {...}, "history": {metric: [(step, value)]}}} from MLflow (as test_faults)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    out: dict = {}
    for run in client.search_runs([client.get_experiment_by_name("folder").experiment_id]):
        entry = out.setdefault(run.data.tags["bench.run_key"], {"status": [], "sel": {}, "history": {}})
        entry["status"].append(run.info.status)
        if run.info.status != "FINISHED":
            continue
        entry["sel"] = {k: v for k, v in run.data.metrics.items() if k.startswith("sel/") and "time" not in k
                        and "images_per_s" not in k}
        for k in run.data.metrics:
            if not k.startswith(VOLATILE) and not k.startswith("sel/"):
                entry["history"][k] = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, k))
    return out


def job_files(home) -> dict:
    """{job dir: file names} without files set aside on purpose (a torn checkpoint is kept as .corrupt-*)."""
    return {d.name: sorted(f.name for f in d.iterdir() if ".corrupt-" not in f.name)
            for d in sorted((home / "jobs").iterdir())}


def weights(home) -> dict:
    return {d.name: torch.load(d / "selected.pt", map_location="cpu", weights_only=False)["state_dict"]
            for d in sorted((home / "jobs").iterdir()) if (d / "selected.pt").is_file()}


def hot_journal(home) -> bool:
    """A rollback journal SQLite must play back (a zeroed header marks one that never reached the disk)."""
    journal = home / "mlflow.db-journal"
    return journal.is_file() and journal.read_bytes()[:1] not in (b"", b"\0")


def landed(log) -> str:
    """The last thing the killed attempt said: where a timed kill landed."""
    lines = [line for line in log.read_text().splitlines() if line.strip() and not line.startswith("WARNING")]
    return lines[-1][:90] if lines else "(before its first line)"


def test_seeded_kills_at_random_moments_end_where_an_uninterrupted_study_ends(tmp_path, mlflow_template, capsys):
    from bench.datasets.fake import make_folder_tree

    data = make_folder_tree(tmp_path / "data", n_classes=3, per_split={"train": 8, "val": 4, "test": 4, "ood": 4})
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"wiseft_alphas": [0.0, 0.5, 1.0]}))
    args = ["run", "--folder", str(data), "--methods", "zeroshot,ft", "--wise-ft", "--config", str(config), *TINY]
    rng = random.Random(SEED)
    server = ForkServer()
    kills, reruns, rounds, attempts = [], [], 0, 0
    try:
        ref = tmp_path / "reference"
        ref.mkdir()
        shutil.copy(mlflow_template, ref / "mlflow.db")
        assert server.run(ref, args, tmp_path / "reference.log") == 0, (tmp_path / "reference.log").read_text()[-3000:]
        while len(kills) < KILLS or not MUST_LAND <= {k[1] for k in kills}:
            assert attempts < MAX_ATTEMPTS, f"no convergence: {kills}"
            rounds += 1
            home = tmp_path / f"round{rounds}"
            home.mkdir()
            shutil.copy(mlflow_template, home / "mlflow.db")
            for attempt in range(1, KILLS_PER_ROUND + 2):
                log = home.parent / f"round{rounds}-{attempt}.log"
                # The last rerun of a round runs to the end; a draw that never comes ends the round earlier.
                fault, after = draw(rng, {k[1] for k in kills}) if attempt <= KILLS_PER_ROUND else (None, None)
                attempts += 1
                rc = server.run(home, args, log, fault=fault, kill_after=after)
                if rc == -signal.SIGKILL:
                    where = landed(log) if after else f"{fault[0]} #{fault[1]}"
                    if hot_journal(home):
                        where += " (left a hot journal)"
                    kills.append((rounds, "timer" if after else fault[0], after or fault[1], where))
                    continue
                assert rc == 0, log.read_text()[-3000:]
                reruns.append((rounds, attempt, log.read_text()))
                break
            got, want = record(home), record(ref)
            assert set(got) == set(want), rounds
            for key, entry in want.items():
                assert got[key]["status"] == ["FINISHED"], (rounds, key, got[key]["status"])  # one run, none RUNNING
                assert got[key]["sel"] == pytest.approx(entry["sel"]), (rounds, key)
                assert got[key]["history"] == entry["history"], (rounds, key)  # every epoch logged once
            assert job_files(home) == job_files(ref), rounds  # no checkpoint, pending or temporary file left
            assert not [p for p in home.rglob("*") if p.name.endswith((".tmp", "-journal", "-wal"))], rounds
            for name, state in weights(ref).items():
                assert all(torch.equal(state[k], weights(home)[name][k]) for k in state), (rounds, name)
    finally:
        server.close()
    with capsys.disabled():
        print(f"\nsoak: {len(kills)} SIGKILLs in {attempts} attempts, {rounds} rounds; by point: "
              f"{dict(Counter(k[1] for k in kills))}")
        for r, point, n, where in kills:
            print(f"  round {r} {point:<16} {n:<5} {where}")
        for r, attempt, text in reruns:
            said = [line for line in text.splitlines() if any(w in line for w in ("resuming", "already done", "unusable",
                                                                                "rebuilt", "train again"))]
            print(f"  round {r} finished on attempt {attempt}: {len(said)} resume/reuse lines, e.g. {said[:2]}")
