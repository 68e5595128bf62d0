"""Soups as derived evaluations under the job lifecycle: one MLflow run per soup nested under the sweep's parent,
ingredients and their digests as params, the soup's weights kept (and exactly the ingredients' mean), reruns
reuse it, WiSE-FT runs over it, and a corrupted ingredient fails the soup by name."""
import pytest
import torch
from mlflow.tracking import MlflowClient

from bench.jobs.lifecycle import JobLifecycle, train_one
from bench.jobs.soup import run_soups
from bench.launch.launcher import run_soups as launch_soups
from bench.tracking.runs import MlflowTracker
from bench.tracking.store import tracking_uri
from helpers import make_job


def trackers(job):
    return MlflowTracker("tests")


def sel(summary):
    return {k: v for k, v in summary.items() if k.startswith("sel/") and "time" not in k and "per_s" not in k}


@pytest.mark.parametrize("method", ["ft", "flyp"])
def test_soups_are_nested_runs_of_the_ingredients_mean(bench_home, folder_root, method):
    bases = [make_job(folder_root, method, epochs=1, lr=lr) for lr in (1e-3, 3e-3)]
    for b in bases:
        train_one(b, MlflowTracker("tests"))
    parent = MlflowTracker("tests").open_parent("sweepkey", "sweep", {}, {}, "x")
    made = run_soups(bases, trackers, parent_run_id=parent)
    assert [j.extra["soup"] for j, _ in made] == ["uniform", "greedy"]

    uniform = torch.load(made[0][0].run_dir / "selected.pt", weights_only=False)
    ingredients = [torch.load(b.run_dir / "selected.pt", weights_only=False) for b in bases]
    for key in ("visual.conv1.weight", "logit_scale", "text_projection"):
        mean = (ingredients[0]["state_dict"][key] + ingredients[1]["state_dict"][key]) / 2
        assert torch.allclose(uniform["state_dict"][key], mean, atol=1e-7), key
    if method == "ft":  # FT soups average the trained heads; FLYP soups rebuild the head from the averaged text tower
        mean = (ingredients[0]["bench_head"]["weight"] + ingredients[1]["bench_head"]["weight"]) / 2
        assert torch.allclose(uniform["bench_head"]["weight"], mean, atol=1e-7)
    else:
        assert uniform["bench_head"] is None
        assert not torch.equal(ingredients[0]["state_dict"]["text_projection"], ingredients[1]["state_dict"]["text_projection"])

    client = MlflowClient(tracking_uri())
    for job, summary in made:
        run = client.get_run(summary["run_id"])
        assert run.info.status == "FINISHED" and run.data.tags["bench.kind"] == "soup"
        assert run.data.tags["mlflow.parentRunId"] == parent and run.data.tags["bench.soup"] == job.extra["soup"]
        digests = {run.data.params[f"ingredient.{i}.run_key"]: run.data.params[f"ingredient.{i}.sha256"] for i in (0, 1)}
        assert digests == {b.run_key: JobLifecycle(b).load_done()["selected_sha256"] for b in bases}
        k = int(run.data.tags["bench.soup_k"])
        assert run.data.tags["bench.soup_K"] == "2" and 1 <= k <= 2 and summary["sel/soup/k"] == k
    assert made[0][1]["sel/soup/k"] == 2  # the uniform soup holds every ingredient

    # The launcher's hook: groups the finished jobs (a zero-shot job is no ingredient), reuses done soups,
    # and runs WiSE-FT over each soup; alpha 1 is the soup itself.
    zs = make_job(folder_root, "zeroshot")
    train_one(zs, MlflowTracker("tests"))
    n_runs = len(client.search_runs([client.get_experiment_by_name("tests").experiment_id]))
    assert launch_soups(bases + [zs], trackers, parent, alphas=[0.0, 1.0]) == []
    runs = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    wise = [r for r in runs if r.data.tags.get("bench.kind") == "wiseft"]
    assert len(runs) == n_runs + 4 and len(wise) == 4  # no soup ran twice; 2 soups x 2 alphas
    uniform_run = made[0][1]["run_id"]
    at_one = next(r for r in wise if r.data.tags["mlflow.parentRunId"] == uniform_run and r.data.tags["bench.alpha"] == "1.0")
    assert at_one.data.tags["bench.soup"] == "uniform" and at_one.data.tags["bench.soup_of"] == method
    assert at_one.data.metrics["sel/val/top1"] == made[0][1]["sel/val/top1"]

    # The report: soup rows (greedy with k of K) after the method's row, their WiSE-FT rows, diamonds on the plot.
    from bench.reports.api import build_report

    report = build_report("tests", layout="tasks", formats=("md",))
    name = {"ft": "FT", "flyp": "FLYP"}[method]
    k = made[1][1]["sel/soup/k"]
    labels = [r.label for r in report.tables[0].ours]
    assert labels == ["Zeroshot", name, f"{name} soup (uniform)", f"{name} soup (greedy, {k} of 2)",
                      f"{name} soup (uniform) + WiSE-FT", f"{name} soup (greedy, {k} of 2) + WiSE-FT"], labels
    uniform_row = report.tables[0].ours[2]
    assert uniform_row.cells["ood/avg"].mean == pytest.approx(100 * made[0][1]["sel/ood/avg"])
    ax = report.figures[(report.tables[0].model, report.tables[0].task, "id_ood")].axes[0]
    diamonds = [c.get_label() for c in ax.collections if c.get_paths() and "soup" in c.get_label()]
    assert f"{name} soup (uniform)" in diamonds


def test_a_corrupted_ingredient_fails_the_soup_by_name(bench_home, folder_root):
    bases = [make_job(folder_root, "ft", epochs=1, lr=lr) for lr in (1e-3, 3e-3)]
    for b in bases:
        train_one(b, MlflowTracker("tests"))
    (bases[1].run_dir / "selected.pt").write_bytes(b"torn")
    failed = launch_soups(bases, trackers)
    assert failed == [bases[0].run_key]  # the group is named by its first job; the other soups still run
    from bench.errors import BenchError

    with pytest.raises(BenchError, match=f"{bases[1].run_key}.*does not match its recorded digest"):
        run_soups(bases, trackers)
