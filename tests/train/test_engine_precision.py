"""The GPU runner's engine path, checked on CPU: device-side loss sums, bf16 autocast jobs that resume
exactly, the runtime precision recorded, and `bench perf` producing its table and JSON."""
from __future__ import annotations

import json

import pytest
import torch

from bench.train.engine import prepare, run_steps
from bench.train.precision import resolve_precision, supported
from helpers import interrupted_and_straight, make_job, selected


def test_device_side_loss_sum_equals_the_per_step_mean(bench_home, folder_root):
    prep, ctx = prepare(make_job(folder_root, "flyp"))
    method = prep.method
    method.setup(ctx)
    seen_losses = []
    original = method.training_step

    def recording_step(images, labels):
        out = original(images, labels)
        seen_losses.append((out["loss"].item(), len(labels)))
        return out

    method.training_step = recording_step
    ds = prep.task.source.split("train", prep.loaded.train_transform)
    batches = [(torch.stack([ds[i][0] for i in range(j, j + 8)]), torch.tensor([ds[i][1] for i in range(j, j + 8)]))
               for j in (0, 8, 16)]
    params = [p for p in method.trainable_parameters() if p.requires_grad]
    hp = {**ctx.hparams, "warmup": 0}
    stats = run_steps(method, batches, torch.optim.AdamW(params, lr=1e-4), params, hp, prep.precision, None,
                      prep.device, first_step=0, total_steps=3)
    expected = sum(v * n for v, n in seen_losses) / sum(n for _, n in seen_losses)
    assert stats["loss"] == pytest.approx(expected, rel=1e-6) and stats["seen"] == 24 and stats["skipped"] == 0


def test_auto_precision_is_fp32_on_cpu():
    assert resolve_precision("auto", torch.device("cpu")).name == "fp32"


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_resumed_mixed_precision_job_continues_exactly(bench_home, folder_root, tmp_path, monkeypatch, precision):
    ok, why = supported(precision, "cpu")
    if not ok:
        pytest.skip(why)
    job = make_job(folder_root, "ft", epochs=3)
    job.runtime["precision"] = precision
    resumed, straight = interrupted_and_straight(job, tmp_path / "straight", monkeypatch)
    assert selected(resumed) == selected(straight)
    from mlflow.tracking import MlflowClient

    from bench.tracking.store import tracking_uri

    run = MlflowClient(tracking_uri()).get_run(resumed["run_id"])
    assert run.data.params["runtime.precision"] == precision
    assert run.data.params["built.activation"] in ("gelu", "quick_gelu")


def test_bench_perf_prints_its_table_and_writes_json(tmp_path, capsys):
    from bench.cli.main import main

    out = tmp_path / "perf.json"
    assert main(["perf", "--model", "bench-tiny", "--steps", "1", "--warmup-steps", "1", "--repeats", "2",
                 "--batch-size", "4", "--skip", "lp", "--loader-images", "8", "--workers", "0", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "engine/bare" in text and "engine/reference" in text and "loader" in text
    report = json.loads(out.read_text())
    for method in ("flyp", "ft"):
        train = report["train"][method]
        assert train["engine"]["runs"] == 2 and train["flops_per_sample"] > 0 and train["engine_vs_bare"] > 0


def test_bench_perf_times_micro_batches_against_the_small_batch(tmp_path, capsys):
    from bench.cli.main import main

    out = tmp_path / "perf.json"
    assert main(["perf", "--model", "bench-tiny", "--steps", "1", "--warmup-steps", "1", "--repeats", "1",
                 "--batch-size", "8", "--micro-batch", "4", "--skip", "reference,eval,loader,lp,flops",
                 "--out", str(out)]) == 0
    assert "chunked/plain" in capsys.readouterr().out
    for method in ("flyp", "ft"):
        mb = json.loads(out.read_text())["train"][method]["micro_batch"]
        assert (mb["chunked"]["batch"], mb["chunked"]["micro_batch"], mb["plain"]["batch"]) == (8, 4, 4)
        assert mb["chunked_vs_plain"] > 0
