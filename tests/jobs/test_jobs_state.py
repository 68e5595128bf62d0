"""Job states (pending, incomplete, stopped, done), `bench run` relaunching nothing that is done, and
`bench clean --incomplete` with its confirmation."""
import pytest
from mlflow.tracking import MlflowClient

from bench.cli.main import main
from bench.jobs.lifecycle import train_one
from bench.jobs.state import DONE, INCOMPLETE, PENDING, STOPPED, format_table, job_states, mark_stopped, prepare_launch
from bench.tracking.runs import MlflowTracker
from bench.tracking.store import tracking_uri
from helpers import make_job

TINY = ["--model", "bench-tiny", "--pretrained", "none", "--workers", "0", "--set", "epochs=2", "--set", "batch_size=8",
        "--set", "warmup=2", "--set", "lr=1e-3"]


class CrashAfter:
    def __init__(self, epoch):
        self.epoch = epoch

    def report(self, metrics, epoch):
        if epoch == self.epoch:
            raise RuntimeError("injected crash")
        return False


class StopAt(CrashAfter):
    def report(self, metrics, epoch):
        return epoch == self.epoch


def statuses(run_key=None):
    client = MlflowClient(tracking_uri())
    exp = client.get_experiment_by_name("tests")
    found = client.search_runs([exp.experiment_id]) if exp else []
    return sorted(r.info.status for r in found if run_key in (None, r.data.tags.get("bench.run_key")))


def test_states_follow_the_job_through_crash_resume_and_a_lost_record(bench_home, folder_root):
    job = make_job(folder_root, "ft")
    assert job_states([job]) == [PENDING]
    with pytest.raises(RuntimeError, match="injected"):
        train_one(job, MlflowTracker("tests"), CrashAfter(1))
    assert (job.run_dir / "checkpoint.pt").is_file() and statuses() == ["FAILED"]
    assert job_states([job]) == [INCOMPLETE]

    resumed = train_one(job, MlflowTracker("tests"))  # resumes the same run from its checkpoint
    assert job_states([job]) == [DONE] and statuses() == ["FINISHED"]
    assert resumed["resumed_from"] == "epoch 1 step 5" and resumed["attempt_steps"] == 5  # 40 images, batch 8
    assert "(resumed from epoch 1 step 5, 5 steps)" in format_table([job], [DONE])  # what `bench status --jobs` shows

    # The MLflow record is gone (store replaced, run deleted): the marker alone does not make it done.
    client = MlflowClient(tracking_uri())
    for r in client.search_runs([client.get_experiment_by_name("tests").experiment_id]):
        client.delete_run(r.info.run_id)
    assert job_states([job]) == [INCOMPLETE]
    prepare_launch(job)
    assert (job.run_dir / "done.stale.json").is_file() and not (job.run_dir / "done.json").exists()
    train_one(job, MlflowTracker("tests"))
    assert job_states([job]) == [DONE] and statuses() == ["FINISHED"]


def test_a_job_stopped_early_is_stopped_only_with_its_marker(bench_home, folder_root):
    job = make_job(folder_root, "ft", epochs=3)
    train_one(job, MlflowTracker("tests"), StopAt(1))
    assert statuses() == ["KILLED"] and (job.run_dir / "checkpoint.pt").is_file()
    assert job_states([job]) == [INCOMPLETE]  # KILLED alone: Ctrl-C, resumable
    mark_stopped(job, {"by": "tune", "epoch": 1})
    assert job_states([job]) == [STOPPED]
    prepare_launch(job)  # `bench run` wants the whole job: it resumes a stopped one
    resumed = train_one(job, MlflowTracker("tests"))
    assert resumed["resumed_from"] == "epoch 1 step 5" and resumed["attempt_steps"] == 2 * 5
    assert job_states([job]) == [DONE] and statuses() == ["FINISHED"]


def test_bench_run_dry_run_shows_states_and_a_rerun_launches_nothing(bench_home, folder_root, capsys):
    args = ["run", "--folder", str(folder_root), "--methods", "ft"] + TINY
    assert main(args + ["--dry-run"]) == 0
    assert "1 job(s) (1 pending)" in capsys.readouterr().out
    assert main(args) == 0
    capsys.readouterr()
    assert main(args + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1 job(s) (1 done)" in out and " done " in out
    assert main(args) == 0
    assert "1 job(s): 1 done; launching 0" in capsys.readouterr().out
    client = MlflowClient(tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name("folder").experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED"]


def test_clean_incomplete_asks_then_deletes_only_unfinished_jobs(bench_home, folder_root, capsys, monkeypatch):
    done = make_job(folder_root, "ft", epochs=1)
    train_one(done, MlflowTracker("tests"))
    broken = make_job(folder_root, "ft", lr=2e-3)
    with pytest.raises(RuntimeError):
        train_one(broken, MlflowTracker("tests"), CrashAfter(1))
    stopped = make_job(folder_root, "ft", lr=3e-3)
    train_one(stopped, MlflowTracker("tests"), StopAt(1))
    mark_stopped(stopped, {"by": "tune", "epoch": 1})
    assert job_states([done, broken, stopped]) == [DONE, INCOMPLETE, STOPPED]

    assert main(["clean"]) == 2 and "pass --incomplete" in capsys.readouterr().err
    # Not a terminal and no --yes: refuse, delete nothing.
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["clean", "--incomplete"]) == 2
    out = capsys.readouterr()
    assert broken.run_key in out.out and "pass --yes" in out.err and stopped.run_key not in out.out
    # A terminal: the answer decides.
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert main(["clean", "--incomplete"]) == 1 and "Nothing deleted" in capsys.readouterr().out
    assert job_states([done, broken, stopped]) == [DONE, INCOMPLETE, STOPPED]
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert main(["clean", "--incomplete"]) == 0
    assert job_states([done, broken, stopped]) == [DONE, PENDING, STOPPED]
    assert not broken.run_dir.exists() and statuses(broken.run_key) == []
    assert main(["clean", "--incomplete", "--stopped", "--yes"]) == 0
    assert job_states([done, broken, stopped]) == [DONE, PENDING, PENDING]
    assert statuses() == ["FINISHED"]  # the finished job's run is untouched
    assert main(["clean", "--incomplete", "--yes"]) == 0 and "No unfinished jobs" in capsys.readouterr().out
