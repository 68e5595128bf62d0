"""Engine defaults fit a small folder task: the default FT run reaches its peak lr and changes the model;
too-short or over-long-warmup schedules are reported before any work starts."""
import pytest

from bench.cli.main import main
from bench.jobs.lifecycle import train_one
from bench.jobs.plan import build_plan
from bench.train.schedule import cosine_lr
from bench.tracking.runs import MlflowTracker


@pytest.fixture(scope="module")
def folder64(tmp_path_factory):
    from bench.datasets.fake import make_folder_tree

    return make_folder_tree(tmp_path_factory.mktemp("data") / "small", n_classes=4,
                            per_split={"train": 16, "val": 4, "test": 4, "ood": 4})


def plan_for(folder, *sets, methods="zeroshot,ft"):
    return build_plan(folder=str(folder), methods=methods, model="bench-tiny", pretrained="none", sets=list(sets))


def test_default_schedule_fits_64_images_and_ft_changes_the_model(bench_home, folder64, capsys):
    plan = plan_for(folder64)
    zs, ft = plan.jobs
    assert ft.hparams["batch_size"] == 16 and ft.hparams["epochs"] == 10
    schedule = plan.schedules[1]
    assert (schedule.n_train, schedule.steps_per_epoch, schedule.total_steps) == (64, 4, 40)
    assert 0 < ft.hparams["warmup"] < schedule.total_steps and not plan.warnings
    peak = max(cosine_lr(s, ft.hparams["lr"], ft.hparams["warmup"], schedule.total_steps) for s in range(40))
    assert peak == pytest.approx(ft.hparams["lr"])
    for job in plan.jobs:
        job.runtime.update(workers=0, device="cpu", log_every=2)
    tracker = MlflowTracker(plan.experiment)
    zs_summary, ft_summary = train_one(zs, tracker), train_one(ft, tracker)
    logged = [m.value for m in tracker.client.get_metric_history(tracker.run_id, "step/lr")]
    # The point at step 2 is the lr of the second step, the end of the 2-step warmup: the peak, as trained.
    assert len(logged) == 20 and logged[0] == pytest.approx(ft.hparams["lr"])
    # Cross-entropy on validation is a function of every predicted probability: equal values would mean FT did nothing.
    assert ft_summary["sel/val/loss"] != pytest.approx(zs_summary["sel/val/loss"], rel=1e-4)


def test_too_short_schedule_and_long_warmup_are_reported_before_work(bench_home, folder64, capsys):
    plan = plan_for(folder64, "epochs=1", "batch_size=64", "warmup=500", methods="ft")
    assert plan.jobs[0].hparams["warmup"] == 1  # capped to the run's single step
    assert any("exceeds the run's 1 steps" in w for w in plan.warnings)
    assert any("only 1 training step" in w for w in plan.warnings)
    assert main(["run", "--folder", str(folder64), "--methods", "ft", "--model", "bench-tiny", "--pretrained", "none",
                 "--set", "epochs=1", "--set", "batch_size=64", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "64 imgs, 1 steps/epoch, 1 steps" in out and "warning:" in out and "only 1 training step" in out


def test_explicit_values_are_kept(bench_home, folder64):
    ft = plan_for(folder64, "batch_size=32", "warmup=3", methods="ft").jobs[0]
    assert (ft.hparams["batch_size"], ft.hparams["warmup"]) == (32, 3)
