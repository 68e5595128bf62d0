"""A consistent CLI: plural flags everywhere (singular aliases), --set keys in `bench run --help`, model/pretrained
pairs in `bench list models`; a sweep's parent run carries its best trial and the true sample count."""
import pytest
import yaml
from mlflow.tracking import MlflowClient

from bench.cli.main import build_parser, main
from bench.tracking.store import tracking_uri


def test_sweep_takes_plural_flags_and_singular_aliases():
    parser = build_parser()
    for flags in (["--methods", "ft", "--tasks", "a"], ["--method", "ft", "--task", "a"]):
        args = parser.parse_args(["sweep", *flags])
        assert (args.method, args.tasks) == ("ft", "a")


def test_run_help_lists_set_keys_with_defaults(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--set keys and defaults" in out
    assert "lr                     1e-05" in out and "flyp.logit_scale_max" in out and "warmup" in out


def test_list_models_shows_pairs(capsys):
    assert main(["list", "models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["--model", "--pretrained"]
    assert ["toy-clip", "default"] == lines[1].split()[:2]
    assert ["RN50", "openai"] in [line.split()[:2] for line in lines]


def test_sweep_parent_carries_best_trial_and_true_sample_count(bench_home, folder_root, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"num_samples": 8, "hparams": {"lr": {"loguniform": [1e-4, 1e-2]}}}))
    assert main(["sweep", "--methods", "ft", "--folder", str(folder_root), "--space", str(space), "--num-samples", "1",
                 "--model", "bench-tiny", "--pretrained", "none", "--set", "epochs=1", "--set", "batch_size=8",
                 "--workers", "0"]) == 0
    assert "best point h" in capsys.readouterr().out
    client = MlflowClient(tracking_uri())
    found = client.search_runs([client.get_experiment_by_name("folder").experiment_id])
    (parent,) = [r for r in found if r.data.tags.get("bench.kind") == "sweep"]
    nested = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    children = [r for r in nested if r.data.tags.get("bench.kind") == "job"]  # the trials; soups nest there too
    assert parent.data.params["sweep.num_samples"] == "1" and len(children) == 2
    assert sorted(r.data.tags.get("bench.kind") for r in nested if r not in children) == ["soup", "soup"]
    top = max(r.data.metrics["sel/val/top1"] for r in children)
    (best,) = [r for r in children if r.info.run_id == parent.data.tags["bench.best_run_ids"]]
    assert best.data.metrics["sel/val/top1"] == top == pytest.approx(parent.data.metrics["sel/val/top1"])
    assert parent.data.tags["best.hp.lr"] == best.data.params["hp.lr"]
    assert parent.data.metrics["sel/id/test/top1"] == pytest.approx(best.data.metrics["sel/id/test/top1"])
