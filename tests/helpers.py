"""What tests share besides fixtures: jobs on the tiny random-init open_clip model and the generated folder task,
an interrupting reporter, and the interrupted-vs-straight comparison. Import as `from helpers import ...`
(pyproject's pytest `pythonpath` puts tests/ on the path)."""
from __future__ import annotations

from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent


def make_job(folder_root, method: str = "ft", seed: int = 0, experiment: str = "tests", **hparams):
    """A Job on the tiny random-init model and the generated folder task, with small, fast hparams."""
    from bench.config import method_defaults
    from bench.spec.job import Job
    from bench.methods import METHODS
    from bench.spec.suites import folder_task

    name, task = folder_task(str(folder_root))
    hp = {**method_defaults(METHODS.get(method)), "epochs": 2, "batch_size": 8, "warmup": 2, "lr": 1e-3}
    hp.update(hparams)
    return Job(suite="folder", experiment=experiment, task=name, task_spec=task, method=method, hparams=hp,
               seed=seed, model={"arch": "bench-tiny", "pretrained": None}, runtime={"workers": 0, "device": "cpu"})


class StopAfter:
    """An executor's reporter that interrupts the job after `epoch` (as Ctrl-C or a kill would)."""

    def __init__(self, epoch: int = 1):
        self.epoch = epoch

    def report(self, metrics, epoch):
        if epoch == self.epoch:
            raise KeyboardInterrupt
        return False


def selected(summary: dict) -> dict:
    """A summary's selected-epoch metrics without timings (which differ between identical runs)."""
    return {k: v for k, v in summary.items() if k.startswith("sel/") and "time" not in k and "per_s" not in k}


def interrupted_and_straight(job, straight_home, monkeypatch):
    """(summary of `job` interrupted after epoch 1 and resumed, summary of the same job run straight through
    in `straight_home`); BENCH_HOME is restored for the caller."""
    import os

    import pytest

    from bench.jobs.lifecycle import train_one
    from bench.tracking.runs import MlflowTracker

    with pytest.raises(KeyboardInterrupt):
        train_one(job, MlflowTracker("tests"), StopAfter())
    resumed = train_one(job, MlflowTracker("tests"))
    home = os.environ["BENCH_HOME"]
    monkeypatch.setenv("BENCH_HOME", str(straight_home))
    straight = train_one(job)
    monkeypatch.setenv("BENCH_HOME", home)
    return resumed, straight
