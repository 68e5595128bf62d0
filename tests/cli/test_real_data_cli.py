"""`bench data fake` / `bench data check`, the real-data registry and the shipped suites."""
import argparse

import pytest

from bench.cli import data as cli
from bench.datasets import DATASETS
from bench.datasets.check import suite_datasets
from bench.datasets.fake_real import FAKERS
from bench.errors import BenchError
from bench.spec.suites import load_suite

REAL = ["imagenet", "imagenetv2", "imagenet-r", "imagenet-a", "imagenet-sketch", "objectnet", "iwildcam", "fmow",
        "caltech101", "stanfordcars", "flowers102", "pcam", "sst2", "eurosat"]


def data(*argv) -> int:
    parser = argparse.ArgumentParser(prog="bench")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return cli.run(parser.parse_args(["data", *argv]))


def test_every_real_dataset_is_registered_with_a_fake():
    assert [n for n in DATASETS.names() if n in REAL] == REAL and sorted(FAKERS) == sorted(REAL)
    for name in REAL:
        info = DATASETS.get(name).info
        assert info.dirname and info.layout.strip() and info.obtain and info.expected


@pytest.mark.parametrize("suite, tasks", [("distribution-shift", ["imagenet", "iwildcam", "fmow"]),
                                          ("transfer", ["caltech101", "stanfordcars", "flowers102", "pcam", "sst2",
                                                        "eurosat"]),
                                          ("few-shot", [f"{d}-{k}shot" for d in ("sst2", "pcam", "imagenet")
                                                        for k in (4, 16, 32)])])
def test_suites_validate_and_name_registered_datasets(suite, tasks):
    spec = load_suite(suite)
    assert list(spec["tasks"]) == tasks and spec["model"] == {"arch": "ViT-B-16", "pretrained": "openai"}
    for task in spec["tasks"].values():
        assert {"lr", "wd", "batch_size", "epochs", "warmup"} <= set({**spec["hparams"], **task["hparams"]})
    assert all(s["name"] in REAL for s in suite_datasets(spec))


def test_distribution_shift_metrics_and_paper_hparams():
    tasks = load_suite("distribution-shift")["tasks"]
    assert [s["name"] for s in tasks["imagenet"]["ood"]] == ["imagenetv2", "imagenet-r", "imagenet-a",
                                                              "imagenet-sketch", "objectnet"]
    assert tasks["iwildcam"]["ood"][0]["metric"] == "F1-macro_all" and tasks["fmow"]["ood"][0]["metric"] == "acc_worst_region"
    assert tasks["imagenet"]["hparams"] == {"lr": 1e-5, "wd": 0.1, "batch_size": 512, "epochs": 10, "warmup": 500}
    assert tasks["fmow"]["hparams"] == {"lr": 1e-5, "wd": 0.2, "batch_size": 256, "epochs": 20, "warmup": 500}
    few = load_suite("few-shot")["tasks"]
    assert few["sst2-16shot"]["dataset"] == {"name": "sst2", "shots": 16} and few["pcam-4shot"]["hparams"]["lr"] == 1e-6


def test_fake_then_check_then_plan(tmp_path, monkeypatch, capsys):
    assert data("fake", "--suite", "distribution-shift", "--root", str(tmp_path)) == 0
    assert data("check", "--suite", "distribution-shift", "--data-root", str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "imagenet         DIFFERS" in out and "0 missing" in out and "expected 1,281,167" in out
    # Every task builds from the fake trees before any training, as `bench run` does.
    import bench.spec.tasks
    from bench.jobs.plan import build_plan

    monkeypatch.setattr(bench.spec.tasks, "_SOURCES", {})
    monkeypatch.setenv("BENCH_DATA", str(tmp_path))
    plan = build_plan(suite="distribution-shift", methods="zeroshot,flyp", model="bench-tiny", pretrained="none",
                      sets=["epochs=1"])
    assert [j.task for j in plan.jobs] == ["imagenet", "imagenet", "iwildcam", "iwildcam", "fmow", "fmow"]


def test_check_reports_missing_data_with_path_and_source(tmp_path, capsys):
    assert data("check", "--suite", "transfer", "--data-root", str(tmp_path)) == 1
    out = capsys.readouterr().out
    assert "caltech101       MISSING" in out and str(tmp_path / "caltech-101") in out
    assert "data.caltech.edu" in out and "6 missing" in out


def test_missing_data_fails_before_training(tmp_path, monkeypatch):
    import bench.spec.tasks
    from bench.jobs.plan import build_plan

    monkeypatch.setattr(bench.spec.tasks, "_SOURCES", {})
    monkeypatch.setenv("BENCH_DATA", str(tmp_path))
    with pytest.raises(BenchError, match="Dataset 'iwildcam'.*not found"):
        build_plan(suite="distribution-shift", tasks="iwildcam", methods="zeroshot", model="bench-tiny",
                   pretrained="none")


def test_check_needs_a_data_root(monkeypatch):
    monkeypatch.delenv("BENCH_DATA", raising=False)
    with pytest.raises(BenchError, match="BENCH_DATA"):
        data("check", "--suite", "few-shot")


def test_check_names_an_unknown_suite_before_the_data_root(monkeypatch):
    monkeypatch.delenv("BENCH_DATA", raising=False)
    with pytest.raises(BenchError, match="Unknown suite 'no-such-suite'") as err:
        data("check", "--suite", "no-such-suite")
    assert "BENCH_DATA" not in str(err.value)
