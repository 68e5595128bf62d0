"""Issue 19's "done when": on printed digits (datasets/fake_digits.py: a domain toy-clip never saw, with
colour-inverted and blurred test copies as OOD), `bench run` with no --set searches each training method's
lr on ID validation, and FT and FLYP each reach at least 80% of the best ID test accuracy of a manual grid
over the same lrs. MLflow holds one sweep parent per method, the chosen point FINISHED under it (tagged and
recorded on the parent) and the other points stopped early (KILLED, `stopped.json`)."""
from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from bench.cli.main import main
from bench.datasets.fake_digits import make_digit_tree
from bench.tracking.store import tracking_uri

GRID = [1e-5, 4.642e-5, 2.154e-4, 1e-3]


@pytest.mark.slow
def test_default_run_searches_lr_and_reaches_80pct_of_the_best_manual_point(bench_home, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    root = make_digit_tree(tmp_path / "digits", per_class={"train": 12, "val": 8, "test": 8}, n_classes=4)
    base = ["run", "--folder", str(root), "--model", "toy-clip", "--workers", "0", "--device", "cpu"]
    assert main(base + ["--methods", "zeroshot,ft,flyp"]) == 0
    out = capsys.readouterr().out
    assert "lr search: ft on digits: chose lr=" in out and "lr search: flyp on digits: chose lr=" in out

    client = MlflowClient(tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name("folder").experiment_id])
    tuned = {}
    for method in ("ft", "flyp"):
        parent, = [r for r in runs if r.data.tags.get("bench.kind") == "sweep" and r.data.tags["bench.sweep.method"] == method]
        assert parent.info.status == "FINISHED" and json.loads(parent.data.params["space.lr"]) == {"grid": GRID}
        trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        done = [r for r in trials if r.info.status == "FINISHED"]
        assert len(trials) == 4 and len(done) == 1 and done[0].data.tags["bench.tuned"] == "lr:4"
        assert {r.info.status for r in trials if r not in done} == {"KILLED"}
        assert parent.data.tags["bench.best_hparam_idx"] == done[0].data.tags["bench.hparam_idx"]
        tuned[method] = done[0].data.metrics["sel/id/test/top1"]
    assert "lr tuned on ID val: best of 4" in out  # the report's rows

    for lr in GRID:  # the manual grid: the chosen point is one of these jobs (done), the others finish
        assert main(base + ["--methods", "ft,flyp", "--set", f"lr={lr}"]) == 0
    runs = client.search_runs([client.get_experiment_by_name("folder").experiment_id])
    for method in ("ft", "flyp"):
        scores = [r.data.metrics["sel/id/test/top1"] for r in runs if r.info.status == "FINISHED"
                  and r.data.tags.get("bench.method") == method and r.data.tags.get("bench.kind") == "job"]
        assert len(scores) == 4 and max(scores) >= 0.4  # the grid learns (chance is 0.25; 32 test images)
        assert tuned[method] >= 0.8 * max(scores), (method, tuned[method], scores)
