"""`bench sweep` with the local executor (no Ray), the MLflow parent/child hierarchy, `bench status`, and
bad input that must fail before anything is recorded."""
import hashlib
import os
import subprocess
import sys

import pytest
import yaml
from mlflow.tracking import MlflowClient

from bench.cli.main import main
from bench.tracking.store import tracking_uri

SETS = ["epochs=1", "batch_size=8", "warmup=1", "lr=1e-3"]
SELECT = ["--model", "bench-tiny", "--pretrained", "none"] + [a for s in SETS for a in ("--set", s)]
TINY = SELECT + ["--workers", "0"]


def space(tmp_path, data=None):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data or {"hparams": {"lr": {"loguniform": [1e-4, 1e-2]}}}))
    return str(path)


def sweep_args(folder_root, space_file, *extra):
    return ["sweep", "--method", "ft", "--folder", str(folder_root), "--space", space_file, "--num-samples", "1",
            *TINY, *extra]


def runs(experiment="folder"):
    client = MlflowClient(tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


def test_local_sweep_records_a_parent_and_children_and_reruns_nothing(bench_home, folder_root, tmp_path, capsys):
    """Run in a subprocess, as users do, which also shows that the local executor never imports Ray."""
    code = ("import sys\nfrom bench.cli.main import main\nrc = main(sys.argv[1:])\n"
            "assert 'ray' not in sys.modules, 'the local executor imported ray'\nsys.exit(rc)\n")
    args = sweep_args(folder_root, space(tmp_path))
    env = {**os.environ, "BENCH_HOME": str(bench_home)}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 job(s): 2 pending; launching 2" in proc.stdout

    found = runs()
    parents = [r for r in found if r.data.tags.get("bench.kind") == "sweep"]
    nested = [r for r in found if r.data.tags.get("mlflow.parentRunId")]
    children = [r for r in nested if r.data.tags.get("bench.kind") == "job"]
    soups = [r for r in nested if r.data.tags.get("bench.kind") == "soup"]  # uniform and greedy, of the 2 points
    assert len(parents) == 1 and len(children) == 2 and len(soups) == 2 and len(found) == 5
    parent = parents[0]
    assert parent.info.status == "FINISHED" and "bench.method" not in parent.data.tags  # reports skip it
    sweep_key = parent.data.tags["bench.sweep_key"]
    assert {c.data.tags["mlflow.parentRunId"] for c in nested} == {parent.info.run_id}
    assert sorted(c.data.tags["bench.hparam_idx"] for c in children) == ["0", "1"]
    assert {c.data.tags["bench.sweep_key"] for c in children} == {sweep_key}
    assert all(c.info.status == "FINISHED" and c.data.tags["bench.seed"] == "0" for c in children)
    assert (bench_home / "sweeps" / sweep_key / "sweep.yaml").is_file()

    # The default point (hparam_idx 0) is exactly the job `bench run` runs: one run_key, shared.
    default_child = next(c for c in children if c.data.tags["bench.hparam_idx"] == "0")
    from bench.jobs.plan import build_plan

    plan = build_plan(folder=str(folder_root), methods="ft", model="bench-tiny", pretrained="none",
                      sets=SETS, runtime={"workers": 0})
    assert plan.jobs[0].run_key == default_child.data.tags["bench.run_key"]

    assert main(args) == 0  # the same command again, in process
    assert "2 job(s): 2 done; launching 0" in capsys.readouterr().out
    assert len(runs()) == 5 and runs()[0].info.status == "FINISHED"  # no soup made twice

    assert main(["status", "--folder", str(folder_root), "--methods", "ft", *SELECT]) == 0
    out = capsys.readouterr().out
    assert "`bench run` jobs: 1 done" in out and f"{sweep_key}" in out and "2 job(s): 2 done" in out


def test_sweep_dry_run_prints_points_and_states_and_records_nothing(bench_home, folder_root, tmp_path, capsys):
    assert main(sweep_args(folder_root, space(tmp_path), "--num-samples", "3", "--dry-run")) == 0
    out = capsys.readouterr().out
    assert "4 point(s) x 1 seed(s) = 4 job(s) (4 pending)" in out and out.count(" pending ") == 4
    assert not (bench_home / "jobs").exists() and not (bench_home / "sweeps").exists()


def test_local_and_ray_executors_enumerate_the_same_jobs(bench_home, folder_root, tmp_path):
    from bench.sweeps.sweep import build_sweep

    kw = dict(folder=str(folder_root), space=space(tmp_path), num_samples=3, model="bench-tiny", pretrained="none",
              seeds="0,1")
    local = build_sweep("ft", runtime={"workers": 0, "device": "cpu"}, **kw)[0]
    ray = build_sweep("ft", runtime={"workers": 1, "device": "auto", "eval_batch_size": 64}, **kw)[0]
    assert [j.run_key for j in local.jobs] == [j.run_key for j in ray.jobs] and local.key == ray.key
    assert len(local.jobs) == 8 and len({j.run_key for j in local.jobs}) == 8
    other_seed = build_sweep("ft", runtime={"workers": 0}, **{**kw, "seeds": "0"})[0]
    assert other_seed.key != local.key and {j.run_key for j in other_seed.jobs} < {j.run_key for j in local.jobs}


def snapshot(home):
    files = sorted((str(p.relative_to(home)), p.stat().st_size) for p in home.rglob("*") if p.is_file())
    return files, hashlib.sha256((home / "mlflow.db").read_bytes()).hexdigest()


@pytest.mark.parametrize("case,expected", [
    ("unknown_key", "unknown key(s) ['sample']"),
    ("unknown_distribution", "unknown distribution 'lognormal'"),
    ("empty_space", "has nothing to sweep"),
    ("ray_address", "Cannot reach the Ray cluster at 127.0.0.1:1"),
    ("tracking_server", "Cannot reach the MLflow tracking server http://127.0.0.1:1"),
    ("resources", "--resources expects cpu=N,gpu=M"),
    ("local_with_address", "--address apply to --executor ray only"),
    ("not_training", "Method 'zeroshot' does not train"),
])
def test_bad_sweep_input_fails_before_anything_is_recorded(bench_home, folder_root, tmp_path, capsys, monkeypatch,
                                                          case, expected):
    # Something already recorded, which must not change.
    from bench.tracking.runs import MlflowTracker

    tracker = MlflowTracker("folder")
    tracker.client.set_terminated(tracker.client.create_run(tracker.experiment_id).info.run_id)
    (bench_home / "jobs" / "abc").mkdir(parents=True)
    (bench_home / "jobs" / "abc" / "done.json").write_text("{}")
    before = snapshot(bench_home)

    good = {"hparams": {"lr": {"loguniform": [1e-4, 1e-2]}}}
    data = {"unknown_key": {**good, "sample": 3}, "unknown_distribution": {"hparams": {"lr": {"lognormal": [0, 1]}}},
            "empty_space": {"hparams": {}}}.get(case, good)
    extra = {"ray_address": ["--executor", "ray", "--address", "127.0.0.1:1"], "resources": ["--resources", "tpu=2"],
             "local_with_address": ["--address", "127.0.0.1:1"]}.get(case, [])
    if case == "tracking_server":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    args = sweep_args(folder_root, space(tmp_path, data), *extra)
    if case == "not_training":
        args[args.index("ft")] = "zeroshot"
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and expected in err, err
    assert err.count("bench: error") == 1 and "Traceback" not in err
    assert snapshot(bench_home) == before
