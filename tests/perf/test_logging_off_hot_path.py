"""MLflow writes off the hot path (issue 21, item 6): the tracker queues metric points for a background writer,
keeps each (metric, step) once, has every point written before a checkpoint commits and before the run ends,
and `bench perf` times the engine with and without logging."""
from __future__ import annotations

import json
import threading
import time

from helpers import StopAfter, make_job

from bench.tracking.runs import MlflowTracker


def _slow_store(tracker, delay=0.3):
    """The tracker's real client, each metric write held back by `delay` (a store under load)."""
    original = tracker.client.log_batch
    threads = set()

    def log_batch(run_id, metrics=(), **kw):
        if metrics:
            threads.add(threading.current_thread().name)
            time.sleep(delay)
        return original(run_id, metrics=metrics, **kw)

    tracker.client.log_batch = log_batch
    return threads


def _points(tracker, run_id, key):
    return [(m.step, m.value) for m in tracker.client.get_metric_history(run_id, key)]


def test_points_are_written_in_the_background_once_and_all_before_the_run_ends(bench_home):
    from types import SimpleNamespace

    tracker = MlflowTracker("tests")
    tracker.start(SimpleNamespace(display_name="t"), {}, {"mlflow.runName": "t", "bench.kind": "test"})
    threads = _slow_store(tracker)
    t0 = time.perf_counter()
    for step in range(5):
        tracker.log_metrics({"step/loss": 1.0 / (step + 1)}, step=step)
        tracker.log_metrics({"step/loss": 99.0}, step=step)  # a replay: ignored
    assert time.perf_counter() - t0 < 0.3  # the loop never waited on the store (5 writes take >= 1.5 s)
    tracker.flush()
    assert _points(tracker, tracker.run_id, "step/loss") == [(s, 1.0 / (s + 1)) for s in range(5)]
    tracker.log_metrics({"sel/acc": 0.5}, step=5)
    run_id = tracker.run_id
    tracker.finish()  # drains the queue before the run is terminated
    assert _points(tracker, run_id, "sel/acc") == [(5, 0.5)]
    assert tracker.client.get_run(run_id).info.status == "FINISHED"
    assert threads == {"mlflow-metrics"}


def test_an_epochs_metrics_are_in_the_store_before_its_checkpoint_commits(bench_home, folder_root, monkeypatch):
    from bench.jobs import checkpoints, lifecycle

    tracker = MlflowTracker("tests")
    _slow_store(tracker, delay=0.2)
    seen = []
    original_save = checkpoints.save

    def save(state, path):  # what the store holds at the moment the checkpoint is written
        seen.append((state["epoch"], _points(tracker, state["run_id"], "train/loss")))
        return original_save(state, path)

    monkeypatch.setattr(lifecycle.checkpoints, "save", save)
    try:
        lifecycle.train_one(make_job(folder_root, "ft"), tracker, StopAfter(1))
    except KeyboardInterrupt:
        pass
    epoch, points = seen[0]
    assert epoch == 1 and [s for s, _ in points] == [1]


def test_bench_perf_prints_the_engine_step_time_with_and_without_logging(tmp_path, capsys):
    from bench.cli.main import main

    out = tmp_path / "perf.json"
    assert main(["perf", "--model", "bench-tiny", "--method", "ft", "--batch-size", "4", "--steps", "4", "--repeats", "1",
                 "--warmup-steps", "1", "--skip", "reference,eval,loader,lp,flops", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "engine+log" in printed and "logging every step to MLflow" in printed
    ms = json.loads(out.read_text())["train"]["ft"]["step_ms"]
    assert ms["engine"] > 0 and ms["engine+log"] > 0
