"""Ray Train trials (sweeps/ray_train.py) on a real local Ray of 3 CPUs (a trial's driver and 2 gloo
workers): inside Tune, rank 0's reports reach the trial (so its scheduler sees them), Tune's stop request
reaches every rank (the stopped trial comes first: its actor is reused, so its process lives on), and a
worker that raises fails the trial; outside Tune, a reporter that raises makes the run raise it. The runs
are sequential: 50-60 s in all on 2 cores, mostly process starts."""
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402

pytestmark = pytest.mark.slow  # a Ray runtime

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray3():
    if ray.is_initialized():
        ray.shutdown()
    # The workers import the toy entry by name; Train's controller reads its health-check period from the
    # trial's environment (2 s by default: each run's end would wait for it).
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5"}})
    yield
    ray.shutdown()


def markers(out: Path) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))}


def test_tune_trial_sees_rank0_reports_stops_all_ranks_and_fails_with_a_worker(bench_home, tmp_path, ray3,
                                                                             monkeypatch):
    from ray_train_entry import tune_trial

    monkeypatch.setenv("BENCH_TEST_MARK", "passed")
    env = {"BENCH_HOME": str(bench_home), "BENCH_TEST_MARK": "passed", "MLFLOW_TRACKING_URI": "sqlite:///x.db"}
    payloads = {"stop": {"world": 2, "epochs": 5, "out": str(tmp_path / "stop")},
                "fail": {"world": 2, "epochs": 5, "out": str(tmp_path / "fail"), "fail_rank": 1, "fail_epoch": 2}}
    grid = tune.Tuner(
        tune.with_resources(tune.with_parameters(tune_trial, env=env), {"cpu": 1, "gpu": 0}),
        param_space={"name": tune.grid_search(list(payloads)),
                     "payload": tune.sample_from(lambda c: payloads[c["name"]])},
        tune_config=tune.TuneConfig(max_concurrent_trials=1, reuse_actors=True),
        # Stopping on a result is what ASHA does too: Tune stops the trial, tune.report raises SystemExit.
        run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), name="t", verbose=0, stop={"epoch": 3}),
    ).fit()
    results = {r.config["name"]: r for r in grid}

    stopped = results["stop"]
    assert stopped.error is None
    df = stopped.metrics_dataframe
    assert df["epoch"].tolist() == [1, 2, 3]
    assert set(df["sum"]) == {3.0} and set(df["world"]) == {2} and set(df["home"]) == {str(bench_home)}
    # Rank 0 was told to stop at epoch 3, broadcast it, and every rank returned (env vars passed on).
    assert markers(tmp_path / "stop") == {f"rank{r}": {"sum": 3.0, "world": 2, "stopped_at": 3, "env": "passed"}
                                         for r in (0, 1)}
    assert (bench_home / "ray_results" / "train-stop").is_dir()

    failed = results["fail"]
    assert isinstance(failed.error, ray.train.TrainingFailedError), failed.error
    assert "rank 1 fails at epoch 2" in str(failed.error)
    assert not markers(tmp_path / "fail")


def test_a_raising_reporter_fails_the_run_and_rank0(bench_home, tmp_path, ray3):
    from ray_train_entry import Boom, RaisingReporter

    from bench.sweeps.ray_train import run_torch_trial

    with pytest.raises(Boom, match="epoch 1"):
        run_torch_trial("ray_train_entry:toy", {"world": 2, "epochs": 3, "out": str(tmp_path / "out")}, 2, False,
                        None, RaisingReporter(), str(bench_home / "ray_results"), "boom")
    assert not markers(tmp_path / "out")
    with pytest.raises(ValueError, match="module:function"):
        run_torch_trial("ray_train_entry.toy", {}, 2, False, None, RaisingReporter(), str(tmp_path), "typo")
