"""The same numbers for any --workers and any --gpus (issue 21, item 3): each sample's augmentation is seeded
from (job seed, epoch, index), so the images of every step are the same in one process with 0 or 2 (persistent)
workers and in 2 processes, and so are the selected metrics and losses of a whole study."""
from __future__ import annotations

import pytest
import torch

from bench.runtime.distributed import Rank
from bench.train.engine import TrainData

EPOCHS, BATCH = 2, 8


def _batches(train_set, workers: int, rank: Rank) -> tuple[list[list[torch.Tensor]], list[float]]:
    """Per epoch, the images of each step of `rank`, as the engine's loader yields them, and what the main
    process's RNG draws after the pass (FLYP's template draws come from it: loading must leave it alone)."""
    data = TrainData(train_set, 0, BATCH, workers, rank)
    out, after = [], []
    for epoch in range(EPOCHS):
        torch.manual_seed(1000 + epoch)  # as the engine seeds every epoch
        data.set_epoch(epoch, 17 + epoch)
        out.append([images for images, _ in data.loader])
        after.append(torch.rand(()).item())
    return out, after


def test_training_images_do_not_depend_on_workers_or_processes(bench_home, folder_root):
    from bench.model.factory import load_model
    from bench.spec.suites import folder_task
    from bench.spec.tasks import build_task

    name, spec = folder_task(str(folder_root))
    task = build_task(name, spec, seed=0)
    train_set = task.source.split(task.train_split, load_model("bench-tiny", None).train_transform)
    one, rng_one = _batches(train_set, 0, Rank())
    assert not torch.equal(one[0][0], one[1][0])  # epochs draw other crops (and orders)
    two_workers, rng_two = _batches(train_set, 2, Rank())
    assert all(torch.equal(a, b) for e, f in zip(one, two_workers) for a, b in zip(e, f))
    assert rng_one == rng_two  # persistent workers (no new iterator in epoch 2) leave the global RNG alike
    ranks = [_batches(train_set, 0, Rank(r, 2))[0] for r in range(2)]
    for epoch in range(EPOCHS):
        for step, whole in enumerate(one[epoch]):
            merged = torch.empty_like(whole)
            for r in range(2):  # rank r holds every other sample of the global batch
                merged[r::2] = ranks[r][epoch][step]
            assert torch.equal(merged, whole), (epoch, step)


def _study(home, args) -> dict:
    """`bench ARGS` in a fresh BENCH_HOME; {run_key: (sel/* metrics, {loss metric: values per step})}."""
    import os
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    env = {**os.environ, "BENCH_HOME": str(home), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, "-m", "bench", *args], env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    out = {}
    for run in client.search_runs([client.get_experiment_by_name("folder").experiment_id]):
        assert run.info.status == "FINISHED"
        sel = {k: v for k, v in run.data.metrics.items()
               if k.startswith("sel/") and "time" not in k and "per_s" not in k}
        losses = {k: [m.value for m in sorted(client.get_metric_history(run.info.run_id, k), key=lambda m: m.step)]
                  for k in run.data.metrics if "loss" in k and not k.startswith("sel/")}
        out[run.data.tags["bench.run_key"]] = (sel, losses)
    return out


@pytest.mark.slow  # three bench processes, one of them a 2-process job
def test_a_study_gives_the_same_numbers_with_any_workers_and_processes(tmp_path, mlflow_template):
    import shutil

    from bench.datasets.fake import make_folder_tree

    data = make_folder_tree(tmp_path / "data", n_classes=3, per_split={"train": 16, "val": 4, "test": 4, "ood": 4})
    args = ["run", "--folder", str(data), "--methods", "ft,flyp", "--model", "bench-tiny", "--pretrained", "none",
            "--set", f"epochs={EPOCHS}", "--set", f"batch_size={BATCH}", "--set", "warmup=1", "--set", "lr=1e-3"]
    results = {}
    for label, extra in (("workers0", ["--workers", "0"]), ("workers2", ["--workers", "2"]),
                         ("gpus2", ["--workers", "0", "--device", "cpu", "--gpus", "2"])):
        (tmp_path / label).mkdir()
        shutil.copy(mlflow_template, tmp_path / label / "mlflow.db")
        results[label] = _study(tmp_path / label, [*args, *extra])
    ref = results["workers0"]
    assert len(ref) == 2 and all(sel and losses for sel, losses in ref.values())
    for label in ("workers2", "gpus2"):
        assert set(results[label]) == set(ref), label
        for key, (sel, losses) in ref.items():
            got_sel, got_losses = results[label][key]
            assert got_sel == pytest.approx(sel, rel=1e-4, abs=1e-5), (label, key, got_sel, sel)
            assert got_losses.keys() == losses.keys(), (label, key)
            for metric, values in losses.items():
                assert got_losses[metric] == pytest.approx(values, rel=1e-4, abs=1e-5), (label, key, metric)
