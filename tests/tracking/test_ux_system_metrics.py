"""System metrics: each training run records MLflow's system/* metrics (CPU, memory; GPU where present),
even a run shorter than one sampling interval; WiSE-FT evaluations and BENCH_SYSTEM_METRICS=0 record none."""
from mlflow.tracking import MlflowClient

from bench.cli.main import main
from bench.tracking.store import tracking_uri


def _run(folder_root, experiment):
    return main(["run", "--folder", str(folder_root), "--methods", "ft", "--model", "bench-tiny", "--pretrained", "none",
                 "--set", "epochs=1", "--set", "batch_size=8", "--workers", "0", "--device", "cpu",
                 "--experiment", experiment])


def _system(experiment):
    client = MlflowClient(tracking_uri())
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return run, {k: v for k, v in run.data.metrics.items() if k.startswith("system/")}


def test_training_runs_record_system_metrics(bench_home, folder_root):
    # The default interval (10 s) is longer than this run: its samples are logged when the run ends.
    assert _run(folder_root, "sysm") == 0
    run, system = _system("sysm")
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(system)
    assert system["system/system_memory_usage_megabytes"] > 0
    assert run.info.status == "FINISHED"


def test_finished_runs_maintain_the_headline_column_view(bench_home, folder_root):
    """The experiment carries MLflow's shared-view tag: headline metrics, then method/task/seed."""
    import json

    from bench.tracking.column_view import VIEW_KEY, VIEW_TAG, view_query

    assert _run(folder_root, "view") == 0
    client = MlflowClient(tracking_uri())
    exp = client.get_experiment_by_name("view")
    view = json.loads(exp.tags[VIEW_TAG])
    assert view["selectedColumns"] == ["metrics.`sel/val/top1`", "metrics.`sel/id/test/top1`",
                                       "metrics.`sel/ood/avg`", "tags.`bench.method`", "tags.`bench.task`",
                                       "tags.`bench.seed`"]
    assert view_query(tracking_uri(), exp.experiment_id) == f"&viewStateShareKey={VIEW_KEY}"


def test_system_metrics_can_be_turned_off(bench_home, folder_root, monkeypatch):
    monkeypatch.setenv("BENCH_SYSTEM_METRICS", "0")
    assert _run(folder_root, "nosysm") == 0
    assert _system("nosysm")[1] == {}
