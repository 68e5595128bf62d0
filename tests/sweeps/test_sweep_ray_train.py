"""`bench sweep --executor ray --gpus 2`: a trial that is one job over 2 Ray Train workers (gloo CPU processes
here, GPUs on a cluster), end to end on a real Ray runtime and MLflow server: one MLflow run per job, FINISHED,
recorded by rank 0 alone, with the 2-process world in its params."""
import os

import pytest
import yaml

pytestmark = pytest.mark.slow  # a Ray runtime

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
ray = pytest.importorskip("ray")



def test_ray_train_trial_runs_one_job_on_two_workers(bench_home, folder_root, tmp_path, ray_session):
    from mlflow.tracking import MlflowClient

    from bench.tracking.store import tracking_uri

    from bench.cli.main import main

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"num_samples": 0, "hparams": {"lr": {"grid": [1e-3]}}}))
    code = main(["sweep", "--methods", "flyp", "--folder", str(folder_root), "--space", str(space),
                 "--model", "bench-tiny", "--pretrained", "none", "--set", "epochs=2", "--set", "batch_size=8",
                 "--set", "warmup=2", "--set", "lr=1e-3", "--workers", "0", "--device", "cpu",
                 "--executor", "ray", "--gpus", "2", "--resources", "cpu=0.5,gpu=0"])
    assert code == 0
    client = MlflowClient(tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name("folder").experiment_id])
    trials = [r for r in runs if r.data.tags.get("bench.kind") == "job"]
    assert trials and {r.info.status for r in trials} == {"FINISHED"}
    assert len({r.data.tags["bench.run_key"] for r in trials}) == len(trials)  # one run per job
    assert {r.data.params["runtime.processes"] for r in trials} == {"2"}
    assert all(client.get_metric_history(r.info.run_id, "val/top1") for r in trials)
    parent, = [r for r in runs if r.data.tags.get("bench.kind") == "sweep"]
    assert parent.info.status == "FINISHED"
