"""The training engine with a real MLflow SQLite store: tracking, failure states, exact resume."""
import json

import pytest
import torch
from mlflow.tracking import MlflowClient

from bench.jobs.lifecycle import train_one

from bench.train.engine import NonFiniteLoss
from bench.tracking.runs import MlflowTracker
from bench.tracking.store import tracking_uri
from helpers import StopAfter, assert_same_weights, check_resumed, make_job


def runs(experiment="tests"):
    client = MlflowClient(tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id])


def test_mlflow_run_records_params_metrics_tags_and_finishes(bench_home, folder_root):
    job = make_job(folder_root, "ft")
    summary = train_one(job, MlflowTracker("tests"))
    client, found = runs()
    assert len(found) == 1
    run = found[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["hp.lr"] == "0.001" and run.data.params["hp.epochs"] == "2"
    assert run.data.params["method"] == "ft" and run.data.params["model.arch"] == "bench-tiny"
    tags = run.data.tags
    assert tags["bench.run_key"] == job.run_key and tags["bench.method"] == "ft"
    assert tags["bench.task"] == job.task and tags["bench.seed"] == "0" and tags["bench.model"] == "bench-tiny"
    assert "bench.git_sha" in tags
    for key in ("train/loss", "val/top1", "id/test/top1", "ood/ood/top1", "ood/avg", "sel/epoch", "sel/ood/avg"):
        assert key in run.data.metrics, key
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/top1")] == [1, 2]
    assert run.data.metrics["sel/val/top1"] == pytest.approx(summary["sel/val/top1"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.jsonl"} <= artifacts
    assert (job.run_dir / "selected.pt").is_file() and (job.run_dir / "done.json").is_file()
    assert not (job.run_dir / "checkpoint.pt").exists()


def test_a_run_whose_training_raises_ends_failed(bench_home, folder_root, monkeypatch):
    from bench.methods.ft import FineTune

    def boom(self, images, labels):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(FineTune, "training_step", boom)
    with pytest.raises(RuntimeError, match="injected"):
        train_one(make_job(folder_root, "ft"), MlflowTracker("tests"))
    assert [r.info.status for r in runs()[1]] == ["FAILED"]


def test_non_finite_loss_fails_clearly(bench_home, folder_root):
    job = make_job(folder_root, "flyp", lr=1e12, warmup=0, logit_scale_max=0.0)
    with pytest.raises(NonFiniteLoss, match="Lower the learning rate"):
        train_one(job, MlflowTracker("tests"))
    assert [r.info.status for r in runs()[1]] == ["FAILED"]


@pytest.mark.parametrize("method", ["flyp", "ft"])
def test_interrupted_run_resumes_to_the_same_result(bench_home, folder_root, tmp_path, monkeypatch, method):
    job = make_job(folder_root, method, epochs=3)
    straight = train_one(job, MlflowTracker("tests"))
    straight_weights = job.run_dir / "selected.pt"

    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "second"))
    (tmp_path / "second").mkdir()
    import shutil
    shutil.copy(bench_home / "mlflow.db", tmp_path / "second" / "mlflow.db")
    with pytest.raises(KeyboardInterrupt):
        train_one(job, MlflowTracker("tests"), StopAfter(1))
    assert torch.load(job.run_dir / "checkpoint.pt", weights_only=False)["epoch"] == 1
    client, found = runs()
    killed = [r for r in found if r.info.status == "KILLED"]
    assert len(killed) == 1
    resumed = train_one(job, MlflowTracker("tests"))

    check_resumed(resumed, straight, epoch=1, epochs=3)  # not a restart from scratch that ends alike
    for key, value in straight.items():
        if key.startswith("sel/"):
            assert resumed[key] == value, key
    assert_same_weights(job.run_dir / "selected.pt", straight_weights)
    run = client.get_run(killed[0].info.run_id)  # the same MLflow run was reopened and finished
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/top1")] == [1, 2, 3]
    assert json.loads((job.run_dir / "done.json").read_text())["run_id"] == run.info.run_id
    assert run.data.tags["bench.resumed_from"] == resumed["resumed_from"]
    assert run.data.tags["bench.attempt_steps"] == str(resumed["attempt_steps"])


def test_finished_job_is_not_run_again(bench_home, folder_root):
    job = make_job(folder_root, "zeroshot")
    first = train_one(job, MlflowTracker("tests"))
    second = train_one(job, MlflowTracker("tests"))
    assert first == second and len(runs()[1]) == 1
