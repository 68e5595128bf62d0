"""The Ray executor on a real Ray runtime (one `ray.init(num_cpus=2)` for the module) and a real MLflow
server that bench starts on 127.0.0.1 over the SQLite store: a 4-trial ASHA sweep whose first trial's
worker is SIGKILLed mid-run; the next invocation resumes it from its checkpoint to the metrics of an
uninterrupted run; a third launches nothing. MLflow holds one parent and 4 children, none RUNNING."""
import dataclasses
import json
import os
import signal

import pytest
import yaml

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402

from bench.launch.launcher import LaunchOptions, launch  # noqa: E402
from bench.jobs.state import DONE, INCOMPLETE, STOPPED  # noqa: E402
from bench.sweeps.sweep import build_sweep  # noqa: E402

pytestmark = pytest.mark.slow  # a Ray runtime





class KillAtEpoch(tune.Callback):
    """SIGKILLs the worker process of one trial right after it reports `epoch` (the trial's thread is then
    parked in tune.report, so the kill lands mid-run, after that epoch's checkpoint)."""

    def __init__(self, run_key, epoch):
        self.run_key, self.epoch, self.killed = run_key, epoch, None

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.killed is None and trial.config["run_key"] == self.run_key and result.get("epoch") == self.epoch:
            self.killed = result["pid"]
            os.kill(result["pid"], signal.SIGKILL)


def tree(experiment):
    from mlflow.tracking import MlflowClient

    from bench.tracking.store import tracking_uri

    client = MlflowClient(tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    parents = [r for r in runs if r.data.tags.get("bench.kind") == "sweep"]
    children = {int(r.data.tags["bench.hparam_idx"]): r for r in runs if "mlflow.parentRunId" in r.data.tags}
    return runs, parents, children


def test_ray_asha_sweep_survives_a_killed_worker_and_reruns_nothing(bench_home, folder_root, tmp_path, ray_session,
                                                                    monkeypatch):
    space = tmp_path / "space.yaml"
    # Point 0 is the default (lr 1e-3); 1e-7 and 1e-6 barely move, so ASHA stops them on val/loss.
    space.write_text(yaml.safe_dump({"hparams": {"lr": {"grid": [1e-7, 3e-3, 1e-6]}}}))
    sweep, = build_sweep("ft", folder=str(folder_root), space=str(space), model="bench-tiny", pretrained="none",
                         sets=["epochs=3", "batch_size=8", "warmup=2", "lr=1e-3"],
                         runtime={"workers": 0, "device": "cpu", "eval_batch_size": 256})
    sweep.metric, sweep.mode = "val/loss", "min"
    assert [j.hparams["lr"] for j in sweep.jobs] == [1e-3, 1e-7, 3e-3, 1e-6]
    target = sweep.jobs[0]
    asha = {"grace_period": 1, "reduction_factor": 2}
    kill = KillAtEpoch(target.run_key, 1)
    # One trial at a time: the trial order, and so ASHA's decisions, are deterministic.
    first = launch(sweep.jobs, LaunchOptions(executor="ray", max_concurrent=1, asha=asha, verbose=0, callbacks=[kill]),
                   sweep=sweep)
    assert kill.killed and first.failed == [target.run_key]
    runs, parents, children = tree("folder")
    assert len(parents) == 1 and parents[0].info.status == "FAILED" and len(children) == 4 and len(runs) == 5
    assert children[0].info.status == "FAILED" and first.states[0] == INCOMPLETE
    assert (target.run_dir / "checkpoint.pt").is_file()
    status = {i: children[i].info.status for i in (1, 2, 3)}
    assert "KILLED" in status.values() and "RUNNING" not in status.values(), status
    for i in (1, 2, 3):
        assert first.states[i] == {"KILLED": STOPPED, "FINISHED": DONE}[status[i]]
        if status[i] == "KILLED":
            assert children[i].data.tags["bench.stopped_by"] == "tune"

    second = launch(sweep.jobs, LaunchOptions(executor="ray", max_concurrent=1, asha=asha, verbose=0),
                    sweep=sweep)
    assert [j.run_key for j in second.launched] == [target.run_key] and not second.failed
    runs, parents, children = tree("folder")
    assert len(runs) == 5 and parents[0].info.status == "FINISHED"
    assert children[0].info.status == "FINISHED" and second.states[0] == DONE
    assert [m.step for m in _history(children[0].info.run_id, "val/loss")] == [1, 2, 3]  # one run, resumed
    resumed = json.loads((target.run_dir / "done.json").read_text())

    third = launch(sweep.jobs, LaunchOptions(executor="ray", asha=asha, verbose=0), sweep=sweep)
    assert third.launched == [] and len(tree("folder")[0]) == 5

    # The same job, uninterrupted, with the local executor's engine call in another BENCH_HOME.
    import torch

    from bench.jobs.lifecycle import train_one

    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "twin"))
    twin = dataclasses.replace(target, tags={})
    assert twin.run_key == target.run_key
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the Ray worker (OMP_NUM_THREADS = the trial's CPUs)
    try:
        straight = train_one(twin)
    finally:
        torch.set_num_threads(threads)
    sel = sorted(k for k in straight if k.startswith("sel/"))
    assert sel and all(resumed[k] == pytest.approx(straight[k], rel=1e-5, abs=1e-6) for k in sel), \
        {k: (resumed[k], straight[k]) for k in sel}


def _history(run_id, key):
    from mlflow.tracking import MlflowClient

    from bench.tracking.store import tracking_uri

    return MlflowClient(tracking_uri()).get_metric_history(run_id, key)
