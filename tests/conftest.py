"""Shared fixtures: a fresh BENCH_HOME with a real (pre-migrated, copied) MLflow SQLite store per test,
a tiny generated folder dataset, and a Ray runtime. Helpers that tests import live in tests/helpers.py."""
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


@pytest.fixture(scope="module")
def ray_session():
    """A real Ray runtime on this machine's 2 CPUs for a test module, shut down after it."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
