"""Defaults that learn on your own data (issue 19): where nothing sets lr on pretrained weights, `bench run`
plans an lr search on ID validation (shown in --dry-run with batch and steps), small sets get a batch that
gives ~20 steps per epoch, a run that did not learn is called out, and bad folders are refused before any
run is recorded."""
from __future__ import annotations

import pytest
from PIL import Image

from bench.cli.main import main
from bench.jobs.learned import did_not_learn
from bench.jobs.plan import build_plan
from bench.reports.labels import run_note
from bench.reports.layout import Row
from bench.reports.tables import note_text
from bench.sweeps.tune import halving_cost, rungs
from bench.train.fitted_defaults import fitted_batch

TOY = ["--model", "toy-clip", "--workers", "0", "--device", "cpu"]


def test_batch_rule_gives_small_sets_about_20_steps_per_epoch():
    assert [fitted_batch(n) for n in (40, 64, 300, 1000, 8192, 1_281_167)] == [10, 16, 16, 31, 256, 256]
    assert fitted_batch(1000, cap=24) == 24  # a smaller method default is kept


def test_halving_schedule_costs_at_most_2_5_runs():
    assert rungs(10, 4) == [3, 5, 10] and rungs(6, 4) == [2, 3, 6] and rungs(1, 4) == [1]
    assert halving_cost(10, 4) == pytest.approx(2.1) and all(halving_cost(e, 4) <= 2.5 for e in range(2, 60))
    assert halving_cost(2, 4) == 2.5 and halving_cost(1, 4) == 4  # one epoch cannot be halved: every point runs


def test_lr_search_is_planned_where_nothing_sets_lr_and_shown_in_the_dry_run(bench_home, folder_root, capsys):
    def plan(*sets, pretrained=None):
        return build_plan(folder=str(folder_root), methods="zeroshot,ft,flyp", model="toy-clip", pretrained=pretrained,
                          sets=list(sets))

    assert plan().lr_search == [("shapes", "ft"), ("shapes", "flyp")]
    assert plan("flyp.lr=1e-4").lr_search == [("shapes", "ft")]
    assert plan("lr=1e-4").lr_search == [] and plan(pretrained="none").lr_search == []
    assert main(["run", "--folder", str(folder_root), "--methods", "zeroshot,ft,flyp", *TOY, "--dry-run"]) == 0
    out = capsys.readouterr().out
    for method in ("ft", "flyp"):
        assert (f"lr search on ID validation: {method} on shapes: lr in [1e-05, 4.642e-05, 0.0002154, 0.001]; "
                "batch 10, 4 steps/epoch, 40 steps per run; successive halving 4 @ epoch 3 -> 2 @ epoch 5 -> "
                "1 @ epoch 10") in out
    assert main(["run", "--folder", str(folder_root), "--methods", "ft", *TOY, "--no-tune", "--dry-run"]) == 0
    assert "lr search" not in capsys.readouterr().out
    assert main(["run", "--folder", str(folder_root), "--methods", "ft", *TOY, "--no-tune", "--tune", "2"]) == 2
    assert "contradict" in capsys.readouterr().err


def test_did_not_learn_is_within_noise_of_zero_shot_or_chance():
    # 100 validation images, 10 classes: 2 standard errors of 0.1 are 0.06.
    assert did_not_learn(0.14, zeroshot=0.10, chance=0.1, n_val=100)
    assert not did_not_learn(0.30, zeroshot=0.10, chance=0.1, n_val=100)
    assert did_not_learn(0.15, zeroshot=None, chance=0.1, n_val=100)  # no zero-shot run: against chance
    assert did_not_learn(0.62, zeroshot=0.60, chance=0.1, n_val=100)  # a strong zero-shot model left where it was
    assert not did_not_learn(0.80, zeroshot=0.60, chance=0.1, n_val=100)
    notes = run_note({"bench.tuned": "lr:4", "bench.did_not_learn": "lr 1e-05, 50 steps"})
    assert notes == "lr tuned on ID val: best of 4; did not learn: lr 1e-05, 50 steps"
    assert note_text(Row("ft", "FT", "ours", seeds=1, note=notes)) == notes
    assert note_text(Row("ft+wiseft", "FT + WiSE-FT", "ours", alphas=(0.5,))) == "α=0.5"


def _tree(root, classes=("a", "b"), splits=("train", "val", "test"), n=2):
    from bench.datasets.fake import _image

    import numpy as np

    rng = np.random.default_rng(0)
    for split in splits:
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                _image(c, rng, 16, False).save(root / split / name / f"{i}.png")
    return root


def _no_runs(bench_home):
    from mlflow.tracking import MlflowClient

    from bench.tracking.store import tracking_uri

    client = MlflowClient(tracking_uri())
    return not [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


@pytest.mark.parametrize("damage, message", [
    ("one_class", "has 1 class folder ('a'); classification needs at least 2"),
    ("no_val", "split 'val' has no images of class folder(s) ['b']"),
    ("corrupt", "1 file(s) that are not readable images: test/b/1.png (UnidentifiedImageError). Replace or remove them."),
])
def test_bad_folders_are_refused_before_any_run(bench_home, tmp_path, capsys, damage, message):
    root = _tree(tmp_path / "data", classes=("a",) if damage == "one_class" else ("a", "b"))
    if damage == "no_val":
        for p in (root / "val" / "b").iterdir():
            p.unlink()
    if damage == "corrupt":
        (root / "test" / "b" / "1.png").write_bytes(b"not a png at all")
    assert main(["run", "--folder", str(root), "--methods", "zeroshot,ft", *TOY]) == 2
    err = capsys.readouterr().err
    assert message in err and _no_runs(bench_home)


def test_a_truncated_but_headed_image_passes_the_cheap_check(tmp_path):
    """The check reads headers only (cheap at 100k files); this pins that choice, and shows PIL's header read."""
    from bench.datasets.folder import FolderDataset

    root = _tree(tmp_path / "data")
    data = (root / "test" / "b" / "1.png").read_bytes()
    (root / "test" / "b" / "1.png").write_bytes(data[: len(data) // 2])
    FolderDataset(root).check_images(["train", "val", "test"])
    Image.open(root / "test" / "a" / "0.png").size  # noqa: B018
