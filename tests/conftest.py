"""Shared fixtures: a fresh BENCH_HOME with a real (pre-migrated, copied) MLflow SQLite store per test,
a tiny generated folder dataset, and jobs on the tiny random-init open_clip model."""
from __future__ import annotations

import os
import shutil

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory):
    """Migrating a new MLflow database takes seconds; copying a migrated one takes milliseconds."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "template.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def bench_home(tmp_path, monkeypatch, mlflow_template):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    monkeypatch.setenv("BENCH_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("BENCH_DATA", raising=False)
    return home


@pytest.fixture(scope="session")
def folder_root(tmp_path_factory):
    from bench.datasets.fake import make_folder_tree

    return make_folder_tree(tmp_path_factory.mktemp("data") / "shapes", n_classes=4,
                            per_split={"train": 10, "val": 4, "test": 4, "ood": 4})


def make_job(folder_root, method: str = "ft", seed: int = 0, experiment: str = "tests", **hparams):
    """A Job on the tiny random-init model and the generated folder task, with small, fast hparams."""
    from bench.config import method_defaults
    from bench.jobs import Job
    from bench.methods import METHODS
    from bench.suites import folder_task

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

    from bench.engine import train_one
    from bench.tracking import MlflowTracker

    with pytest.raises(KeyboardInterrupt):
        train_one(job, MlflowTracker("tests"), StopAfter())
    resumed = train_one(job, MlflowTracker("tests"))
    home = os.environ["BENCH_HOME"]
    monkeypatch.setenv("BENCH_HOME", str(straight_home))
    straight = train_one(job)
    monkeypatch.setenv("BENCH_HOME", home)
    return resumed, straight


@pytest.fixture(scope="module")
def ray_session():
    """A real Ray runtime on this machine's 2 CPUs for a test module, shut down after it."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
