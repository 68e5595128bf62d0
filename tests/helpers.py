"""What tests share besides fixtures: jobs on the tiny random-init open_clip model and the generated folder task,
an interrupting reporter, and the interrupted-vs-straight comparison (resume point, steps executed, weights).
Import as `from helpers import ...` (pyproject's pytest `pythonpath` puts tests/ on the path)."""
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


def check_resumed(resumed: dict, straight: dict, epoch: int, epochs: int) -> None:
    """`resumed` (a done summary) resumed after `epoch` and executed only the remaining epochs' optimizer steps,
    where `straight` ran all `epochs` from scratch: a restart from scratch ends with the same metrics (CPU
    training is deterministic), so only the recorded start and step count tell a resume from a restart."""
    per_epoch, rest = divmod(straight["attempt_steps"], epochs)
    assert straight["resumed_from"] == "fresh" and per_epoch > 0 and rest == 0, straight
    assert resumed["resumed_from"] == f"epoch {epoch} step {epoch * per_epoch}", resumed["resumed_from"]
    assert resumed["attempt_steps"] == (epochs - epoch) * per_epoch, resumed["attempt_steps"]


def assert_same_weights(a: Path, b: Path) -> None:
    """Two selected.pt files hold the same epoch and bit-identical tensors (model and head)."""
    import torch

    wa, wb = (torch.load(p, map_location="cpu", weights_only=False) for p in (a, b))
    assert wa["epoch"] == wb["epoch"]
    for part in ("state_dict", "bench_head"):
        ta, tb = wa[part] or {}, wb[part] or {}
        assert ta.keys() == tb.keys(), part
        different = [k for k in ta if not torch.equal(ta[k], tb[k])]
        assert not different, f"{part}: {different[:5]}"


def interrupted_and_straight(job, straight_home, monkeypatch, epoch: int = 1):
    """(summary of `job` interrupted after `epoch` and resumed, summary of the same job run straight through
    in `straight_home`), having checked that the rerun resumed after `epoch`, executed only the remaining
    steps and ended with the straight run's selected weights; BENCH_HOME is restored for the caller."""
    import os

    import pytest

    from bench.jobs.lifecycle import train_one
    from bench.tracking.runs import MlflowTracker

    with pytest.raises(KeyboardInterrupt):
        train_one(job, MlflowTracker("tests"), StopAfter(epoch))
    resumed = train_one(job, MlflowTracker("tests"))
    resumed_weights = job.run_dir / "selected.pt"
    home = os.environ["BENCH_HOME"]
    monkeypatch.setenv("BENCH_HOME", str(straight_home))
    straight = train_one(job)
    straight_weights = job.run_dir / "selected.pt"
    monkeypatch.setenv("BENCH_HOME", home)
    check_resumed(resumed, straight, epoch, job.hparams["epochs"])
    assert_same_weights(resumed_weights, straight_weights)
    return resumed, straight
