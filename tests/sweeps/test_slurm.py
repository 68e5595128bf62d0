"""`--executor slurm` against a real single-node SLURM cluster on this machine (scripts/slurm/local_cluster.sh:
Debian's slurm-wlm and munge, installed by the script when missing): a 2-job sweep that finishes (run by CI),
a job preempted with SIGUSR2 that resumes to the uninterrupted result, a job over 2 CPU processes."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from bench.cli.main import main
from bench.tracking.store import tracking_uri

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "slurm" / "local_cluster.sh"
TINY = ["--model", "bench-tiny", "--pretrained", "none", "--workers", "0", "--device", "cpu",
        "--set", "batch_size=8", "--set", "warmup=1", "--set", "lr=1e-3"]


@pytest.fixture(scope="module")
def slurm():
    """The local cluster for this module (started here, and stopped at the end if it was not running before);
    its client commands and the sacct stand-in (scripts/slurm/bin) on PATH."""
    if os.geteuid() != 0 and not shutil.which("slurmctld"):
        pytest.skip("the local SLURM cluster needs root (to install slurm-wlm and munge) or an installed slurm-wlm")
    was_running = subprocess.run([str(SCRIPT), "status"], capture_output=True).returncode == 0
    start = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=600)
    assert start.returncode == 0, start.stderr[-3000:]
    conf = next(line.split("=", 1)[1] for line in start.stdout.splitlines() if line.startswith("export SLURM_CONF="))
    saved = {k: os.environ.get(k) for k in ("SLURM_CONF", "PATH")}
    os.environ["SLURM_CONF"] = conf
    os.environ["PATH"] = f"{SCRIPT.parent / 'bin'}:{os.environ['PATH']}"
    yield conf
    for key, value in saved.items():
        os.environ[key] = value if value is not None else ""
    if not was_running:
        subprocess.run([str(SCRIPT), "stop"], capture_output=True, timeout=120)


def slurm_record(home: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(home.glob("jobs/*/slurm.json"))]


def done(home: Path) -> list[dict]:
    """The done markers of the jobs submitted to SLURM (or of every job, where none was)."""
    dirs = [p.parent for p in home.glob("jobs/*/slurm.json")] or list(home.glob("jobs/*"))
    return [json.loads((d / "done.json").read_text()) for d in sorted(dirs) if (d / "done.json").is_file()]


def sel(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k.startswith("sel/") and "time" not in k and "per_s" not in k}


def test_two_job_sweep_runs_on_slurm_and_status_shows_slurm_states(slurm, bench_home, folder_root, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("hparams:\n  lr: {loguniform: [1.0e-4, 1.0e-2]}\n")
    args = ["sweep", "--method", "ft", "--folder", str(folder_root), "--space", str(space), "--num-samples", "1",
            *TINY, "--set", "epochs=1", "--executor", "slurm", "--wait"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Submitted SLURM job array" in out and "2 job(s) (0 GPU(s), 1 CPU(s), 1 process(es) each" in out
    assert "SLURM: 2 COMPLETED; 2/2 job(s) done" in out and "now 2 done" in out
    records = slurm_record(bench_home)
    array = records[0]["job_id"].split("_")[0]
    assert sorted(r["job_id"] for r in records) == [f"{array}_0", f"{array}_1"]  # one array, one task per job
    assert len(done(bench_home)) == 2
    client = MlflowClient(tracking_uri())
    found = client.search_runs([client.get_experiment_by_name("folder").experiment_id])
    parent = [r for r in found if r.data.tags.get("bench.kind") == "sweep"]
    assert parent and parent[0].info.status == "FINISHED"
    assert sorted(r.info.status for r in found if r.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id
                  and r.data.tags.get("bench.hparam_idx")) == ["FINISHED", "FINISHED"]
    log = Path(records[0]["folder"]) / f"{records[0]['job_id']}_0_log.out"
    assert "epoch 1/1" in log.read_text()
    # Submitted without --wait, the parent is left KILLED; a rerun that finds every job done closes it FINISHED.
    client.set_terminated(parent[0].info.run_id, status="KILLED")
    assert main(args) == 0
    assert "launching 0" in capsys.readouterr().out
    assert client.get_run(parent[0].info.run_id).info.status == "FINISHED"

    assert main(["status", "--folder", str(folder_root), "--methods", "ft", *TINY[:4], "--set", "epochs=1"]) == 0
    status = capsys.readouterr().out
    assert "SLURM jobs (2): SLURM state / job state" in status
    assert f"{array}_0" in status and status.count("COMPLETED   done") == 2


def test_bad_slurm_options_fail_before_submission(bench_home, folder_root, capsys):
    run = ["run", "--methods", "ft", "--folder", str(folder_root), *TINY]
    for extra, expected in ((["--executor", "slurm", "--slurm-time", "soon"], "--slurm-time expects minutes"),
                            (["--executor", "slurm", "--slurm-extra", "a100"], "--slurm-extra expects KEY=VALUE"),
                            (["--slurm-partition", "gpu"], "--slurm-partition apply to --executor slurm only")):
        assert main(run + extra) == 2
        assert expected in capsys.readouterr().err
    assert slurm_record(bench_home) == []


def test_shared_state_check_refuses_local_disks_on_other_nodes(bench_home, monkeypatch):
    from bench.errors import BenchError
    from bench.sweeps import slurm_executor as se

    uri = f"sqlite:///{bench_home / 'mlflow.db'}"
    monkeypatch.setattr(se, "_nodes", lambda partition: {"node1", "node2"})
    with pytest.raises(BenchError, match="is on a local disk"):
        se.check_shared(uri, bench_home, None, assume_shared=False)
    se.check_shared(uri, bench_home, None, assume_shared=True)  # --slurm-shared: the user knows
    monkeypatch.setattr(se, "_nodes", lambda partition: None)
    with pytest.raises(BenchError, match="Cannot tell which nodes"):
        se.check_shared(uri, bench_home, None, assume_shared=False)
    monkeypatch.setattr(se, "_nodes", lambda partition: {os.uname().nodename.split(".")[0]})
    se.check_shared(uri, bench_home, None, assume_shared=False)  # every node is this machine


def wait_for(predicate, timeout: float, what: str):
    t0 = time.time()
    while time.time() - t0 < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.mark.slow
def test_job_preempted_with_usr2_is_requeued_and_resumes_to_the_uninterrupted_result(slurm, bench_home, folder_root,
                                                                                     tmp_path, capsys, monkeypatch):
    run = ["run", "--methods", "ft", "--folder", str(folder_root), *TINY, "--set", "epochs=3"]
    with pytest.raises(SystemExit) as exit_:  # without --wait: submit, say how to follow, return
        main(run + ["--executor", "slurm"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "Submitted SLURM job array" in out and "Follow: `bench status" in out
    (record,) = slurm_record(bench_home)
    job_dir = next(bench_home.glob("jobs/*"))
    wait_for(lambda: (job_dir / "checkpoint.pt").is_file(), 120, "the first checkpoint")
    subprocess.run(["scancel", "--signal=USR2", record["job_id"]], check=True)

    assert main(run + ["--executor", "slurm", "--wait"]) == 0  # follows the queued job, submits nothing new
    out = capsys.readouterr().out
    assert f"already SLURM job {record['job_id']}" in out and "Submitted" not in out
    assert slurm_record(bench_home) == [record]
    log = (Path(record["folder"]) / f"{record['job_id']}_0_log.out").read_text()
    assert "SLURM signal SIGUSR2: stopping at the next epoch end" in log and "(restart 1)" in log
    assert "resuming after epoch" in log and "epoch 3/3" in log
    (resumed,) = done(bench_home)
    client = MlflowClient(tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name("folder").experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED"]  # one run, reopened after the requeue

    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "straight"))
    assert main(run) == 0  # the same job, uninterrupted, in this process
    (straight,) = done(tmp_path / "straight")
    assert sel(resumed) == sel(straight) and resumed["sel/epochs_run"] == 3


@pytest.mark.slow
def test_job_over_two_cpu_processes_runs_in_one_allocation(slurm, bench_home, folder_root, capsys):
    run = ["run", "--methods", "ft", "--folder", str(folder_root), *TINY, "--set", "epochs=1", "--gpus", "2",
           "--executor", "slurm", "--wait"]
    assert main(run) == 0
    assert "1 job(s) (0 GPU(s), 2 CPU(s), 2 process(es) each" in capsys.readouterr().out
    (record,) = slurm_record(bench_home)
    script = next(Path(record["folder"]).parent.glob(f"{record['job_id']}/*_submission.sh")).read_text()
    assert "--cpus-per-task=2" in script
    client = MlflowClient(tracking_uri())
    (found,) = client.search_runs([client.get_experiment_by_name("folder").experiment_id])
    assert found.info.status == "FINISHED" and found.data.params["runtime.processes"] == "2"


@pytest.mark.slow
def test_a_job_that_fails_for_a_real_error_is_not_requeued(slurm, bench_home, folder_root, capsys):
    # batch_size 7 cannot split over 2 processes: each rank raises on the node, after submission
    run = ["run", "--methods", "ft", "--folder", str(folder_root), *TINY, "--set", "epochs=1", "--set", "batch_size=7",
           "--gpus", "2", "--executor", "slurm", "--wait"]
    assert main(run) == 2
    captured = capsys.readouterr()
    (record,) = slurm_record(bench_home)
    assert f"SLURM job {record['job_id']} ended FAILED" in captured.out + captured.err
    from bench.sweeps.slurm_executor import slurm_states

    assert slurm_states([record["job_id"]])[record["job_id"]] == "FAILED"
    log = (Path(record["folder"]) / f"{record['job_id']}_0_log.out").read_text()
    assert "(restart" not in log and "requeueing" not in log
    client = MlflowClient(tracking_uri())
    (found,) = client.search_runs([client.get_experiment_by_name("folder").experiment_id])
    assert found.info.status == "FAILED" and "batch_size 7" in found.data.tags["bench.error"]
