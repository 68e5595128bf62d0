"""A study you can browse: after a small folder run, the MLflow store has nested WiSE-FT alphas, a description
and a dataset input on every run, and per-step training curves."""
from mlflow.tracking import MlflowClient

from bench.cli.main import main
from bench.tracking.store import tracking_uri


def test_folder_run_is_browsable_in_mlflow(bench_home, folder_root, capsys, tmp_path):
    config = tmp_path / "alphas.yaml"
    config.write_text("wiseft_alphas: [0.5, 1]\n")
    assert main(["run", "--config", str(config), "--folder", str(folder_root), "--methods", "zeroshot,ft,wiseft", "--model", "bench-tiny",
                 "--pretrained", "none", "--set", "epochs=2", "--set", "batch_size=4", "--log-every", "2",
                 "--workers", "0", "--device", "cpu", "--experiment", "study"]) == 0
    out = capsys.readouterr().out
    client = MlflowClient(tracking_uri())
    exp = client.get_experiment_by_name("study")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert f"/#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning" in out
    runs = client.search_runs([exp.experiment_id], max_results=100)
    by_method = {}
    for run in runs:
        by_method.setdefault(run.data.tags["bench.method"], []).append(run)
    (ft,), (zs,), alphas = by_method["ft"], by_method["zeroshot"], by_method["wiseft"]
    assert len(alphas) == 2
    for run in alphas:  # nested under the FT run, alpha first in the name
        assert run.data.tags["mlflow.parentRunId"] == ft.info.run_id
        assert run.info.run_name.startswith(f"a={float(run.data.tags['bench.alpha']):.1f} ")
    for run in runs:
        assert run.data.tags["mlflow.note.content"].strip(), run.info.run_name
        (inp,) = run.inputs.dataset_inputs
        assert inp.dataset.digest == run.data.params["data.fingerprint"][:36]
    assert "0.001" not in zs.data.tags["mlflow.note.content"] and "2 epochs" in ft.data.tags["mlflow.note.content"]
    # 40 training images, batch 4: 10 steps per epoch, a point every 2 steps (5 per epoch, not 1).
    history = client.get_metric_history(ft.info.run_id, "step/loss")
    assert [m.step for m in history] == list(range(2, 21, 2))
    lrs = [m.value for m in client.get_metric_history(ft.info.run_id, "step/lr")]
    assert len(lrs) == 10 and lrs[0] > lrs[-1]
