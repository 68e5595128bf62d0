"""Every registered method honours the Method contract (DomainBed tests each algorithm this way): set up,
one training step with a finite loss that moves the weights, a state round trip into a fresh instance
that gives identical logits, and an interrupted job that resumes to the uninterrupted result."""
from __future__ import annotations

import pytest
import torch

from bench.train.engine import prepare
from bench.methods import METHODS
from helpers import interrupted_and_straight, make_job, selected

TRAINED = [m for m in METHODS.names() if not METHODS.meta(m).get("derived")]


def _batch(prep):
    ds = prep.task.source.split("train", prep.loaded.train_transform)
    items = [ds[i] for i in range(8)]
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])


@pytest.mark.parametrize("name", TRAINED)
def test_setup_step_and_state_round_trip(bench_home, folder_root, name):
    job = make_job(folder_root, name)
    prep, ctx = prepare(job)
    method = prep.method
    method.setup(ctx)
    images, labels = _batch(prep)
    if method.trains:
        params = [p for p in method.trainable_parameters() if p.requires_grad]
        assert params, f"{name} trains nothing"
        before = [p.detach().clone() for p in params]
        method.train(True)
        loss = method.training_step(images, labels)["loss"]
        assert loss.ndim == 0 and torch.isfinite(loss)
        loss.backward()
        torch.optim.SGD(params, lr=0.1).step()
        method.after_optimizer_step()
        assert any(not torch.equal(b, p) for b, p in zip(before, params)), f"{name}: a step changed nothing"
    method.train(False)
    with torch.no_grad():
        logits = method.classifier()(images)
    assert logits.shape == (len(labels), len(ctx.classnames))

    fresh_prep, fresh_ctx = prepare(job)
    fresh_prep.method.setup(fresh_ctx)
    fresh_prep.method.load_state_dict(method.state_dict())
    fresh_prep.method.train(False)
    with torch.no_grad():
        torch.testing.assert_close(fresh_prep.method.classifier()(images), logits)


@pytest.mark.parametrize("name", [m for m in TRAINED if METHODS.get(m).trains])
def test_interrupted_job_resumes_to_the_uninterrupted_result(bench_home, folder_root, tmp_path, monkeypatch, name):
    resumed, straight = interrupted_and_straight(make_job(folder_root, name), tmp_path / "straight", monkeypatch)
    assert selected(resumed) == selected(straight)
