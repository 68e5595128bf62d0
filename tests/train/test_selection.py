import pytest

from bench.train.selection import Selection
from bench.spec.tasks import with_shot_seed
from helpers import make_job


def offers(rule):
    sel = Selection(rule, "val/top1")
    for epoch, (acc, loss) in enumerate([(0.5, 0.9), (0.7, 0.6), (0.6, 0.6), (0.8, 0.7)]):
        sel.update(epoch, {"val/top1": acc, "val/loss": loss, "ood/avg": epoch / 10, "train/loss": 1.0})
    return sel.summary()


def test_best_last_and_min_val_loss_rules():
    assert offers("best")["sel/epoch"] == 3
    assert offers("last")["sel/epoch"] == 3
    low = offers("min_val_loss")
    assert low["sel/epoch"] == 2  # tie on 0.6 goes to the later epoch
    assert low["sel/ood/avg"] == pytest.approx(0.2) and "sel/train/loss" not in low


def test_each_seed_draws_its_own_few_shot_sample_unless_fixed():
    assert with_shot_seed({"name": "sst2", "shots": 4}, 3) == {"name": "sst2", "shots": 4, "shot_seed": 3}
    assert with_shot_seed({"name": "sst2", "shots": 4, "shot_seed": 9}, 3)["shot_seed"] == 9
    assert with_shot_seed({"name": "sst2"}, 3) == {"name": "sst2"}


def test_min_val_loss_considers_the_untrained_model(bench_home, folder_root):
    from bench.jobs.lifecycle import train_one

    # A learning rate this large wrecks the model, so the untrained epoch 0 must win.
    job = make_job(folder_root, "ft", selection="min_val_loss", lr=5.0, warmup=0, grad_clip=0.0, epochs=2)
    summary = train_one(job)
    assert summary["sel/epoch"] == 0 and summary["sel/epochs_run"] == 3
