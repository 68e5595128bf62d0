"""`bench sweep --executor ray --gpus 2`: a trial that is one job over 2 Ray Train workers (gloo CPU processes
here, GPUs on a cluster), end to end on a real Ray runtime and MLflow server: one MLflow run per job, FINISHED,
recorded by rank 0 alone, with the 2-process world in its params."""
import os

import pytest
import yaml

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
ray = pytest.importorskip("ray")

from bench.launcher import LaunchOptions, launch  # noqa: E402
from bench.jobstate import DONE  # noqa: E402
from bench.sweeps.sweep import build_sweep  # noqa: E402


@pytest.fixture(scope="module")
def ray_session():
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_train_trial_runs_one_job_on_two_workers(bench_home, folder_root, tmp_path, ray_session):
    from mlflow.tracking import MlflowClient

    from bench.tracking import tracking_uri

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"num_samples": 0, "hparams": {"lr": {"grid": [1e-3]}}}))
    sweep, = build_sweep("flyp", folder=str(folder_root), space=str(space), model="bench-tiny", pretrained="none",
                         sets=["epochs=2", "batch_size=8", "warmup=2", "lr=1e-3"],
                         runtime={"workers": 0, "device": "cpu", "eval_batch_size": 256, "nproc": 2})
    outcome = launch(sweep.jobs, LaunchOptions(executor="ray", verbose=0, resources={"cpu": 0.5, "gpu": 0}), sweep=sweep)
    assert outcome.failed == [] and set(outcome.states) == {DONE}
    client = MlflowClient(tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name("folder").experiment_id])
    trials = [r for r in runs if r.data.tags.get("bench.kind") == "job"]
    assert len(trials) == len(sweep.jobs) and {r.info.status for r in trials} == {"FINISHED"}
    assert {r.data.params["runtime.processes"] for r in trials} == {"2"}
    assert all(client.get_metric_history(r.info.run_id, "val/top1") for r in trials)
