"""`bench run --tune N`: the training methods are swept on ID validation first (the run's own jobs are the
sweeps' first points), and the report selects among the configurations."""
from __future__ import annotations

from mlflow.tracking import MlflowClient

from bench.cli.main import main
from bench.tracking.store import tracking_uri

TINY = ["--model", "bench-tiny", "--pretrained", "none", "--workers", "0", "--set", "epochs=1", "--set",
        "batch_size=8", "--set", "warmup=1"]


def test_tune_sweeps_each_training_method_then_runs_the_comparison(bench_home, folder_root, capsys):
    code = main(["run", "--folder", str(folder_root), "--methods", "zeroshot,ft", "--tune", "2", *TINY])
    out = capsys.readouterr().out
    assert code == 0, out
    client = MlflowClient(tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name("folder").experiment_id])
    ft = [r for r in runs if r.data.tags.get("bench.method") == "ft" and r.data.tags.get("bench.kind") == "job"]
    parents = [r for r in runs if r.data.tags.get("bench.kind") == "sweep"]
    assert len(ft) == 3 and {r.info.status for r in ft} == {"FINISHED"}  # the default point + 2 draws, once each
    assert len(parents) == 1 and all(r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id for r in ft)
    assert "best of 3 hparam configs" in out


def test_tune_refuses_a_run_without_training_methods(bench_home, folder_root, capsys):
    assert main(["run", "--folder", str(folder_root), "--methods", "zeroshot", "--tune", "2", *TINY]) == 2
    assert "--tune sweeps methods that train" in capsys.readouterr().err
