"""FLYP for SigLIP models: the objective follows the model, the sigmoid loss matches an independent float64
computation (value and every gradient), heads score as the model does, WiSE-FT endpoints stay exact."""
from __future__ import annotations

import math

import pytest
import torch

from bench.jobs.lifecycle import train_one

from bench.train.engine import prepare
from bench.errors import BenchError
from bench.model.losses import siglip_loss
from bench.methods.flyp import resolve_objective
from bench.methods.wiseft import derive_jobs
from bench.tracking.runs import MlflowTracker
from bench.jobs.wiseft import run_wiseft
from helpers import make_job, selected


def hand_sigmoid_loss(img, txt, scale, bias, labels=None, same_class_positive=False):
    """Zhai et al. (2023), eq. 1, written out pair by pair in float64."""
    n = len(img)
    total = torch.zeros((), dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            positive = i == j or (same_class_positive and labels[i] == labels[j])
            z = 1.0 if positive else -1.0
            logit = scale * sum(img[i, k] * txt[j, k] for k in range(img.shape[1])) + bias
            total = total + torch.log1p(torch.exp(-z * logit))  # -log sigmoid(z * logit)
    return total / n


def batch(requires_grad=True):
    g = torch.Generator().manual_seed(1)
    img = torch.nn.functional.normalize(torch.randn(6, 5, generator=g, dtype=torch.float64), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(6, 5, generator=g, dtype=torch.float64), dim=-1)
    scale = torch.tensor(7.0, dtype=torch.float64)
    bias = torch.tensor(-2.5, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 1, 3])
    return [t.requires_grad_(requires_grad) for t in (img, txt, scale, bias)], labels


@pytest.mark.parametrize("same_class_positive", [False, True])
def test_sigmoid_loss_and_gradients_equal_an_independent_float64_computation(same_class_positive):
    (img, txt, scale, bias), labels = batch()
    ours = siglip_loss(img, txt, scale, bias, labels, same_class_positive)
    ours.backward()
    ref_inputs, _ = batch()
    ref = hand_sigmoid_loss(*ref_inputs, labels=labels.tolist(), same_class_positive=same_class_positive)
    ref.backward()
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12)
    for a, b in zip((img, txt, scale, bias), ref_inputs):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)


def test_multi_positive_variant_differs_only_on_same_class_pairs():
    (img, txt, scale, bias), labels = batch(requires_grad=False)
    distinct = torch.arange(6)  # no two samples share a class: the variants must agree
    assert siglip_loss(img, txt, scale, bias, distinct, True).item() == pytest.approx(
        siglip_loss(img, txt, scale, bias, distinct, False).item(), rel=1e-12)
    assert siglip_loss(img, txt, scale, bias, labels, True).item() != pytest.approx(
        siglip_loss(img, txt, scale, bias, labels, False).item(), rel=1e-6)


def test_auto_follows_the_model_without_a_download():
    from bench.model.factory import load_model

    sigmoid, clip = load_model("bench-tiny-sigmoid").model, load_model("bench-tiny").model
    assert resolve_objective("auto", sigmoid) == "siglip" and resolve_objective("auto", clip) == "clip"
    assert resolve_objective("clip", sigmoid) == "clip"  # the mismatched ablation
    with pytest.raises(BenchError, match="needs a model with a learned logit bias"):
        resolve_objective("siglip", clip)
    import open_clip

    assert open_clip.get_model_config("ViT-B-16-SigLIP")["init_logit_bias"] is not None  # what auto reads


def sigmoid_job(folder_root, method, **hp):
    job = make_job(folder_root, method, **hp)
    job.model = {"arch": "bench-tiny-sigmoid", "pretrained": None}
    return job


def test_siglip_zero_shot_head_scores_with_scale_and_bias(bench_home, folder_root):
    prep, ctx = prepare(sigmoid_job(folder_root, "zeroshot"))
    prep.method.setup(ctx)
    head, model = prep.method.head, prep.loaded.model
    assert torch.allclose(head.bias, model.logit_bias.detach().expand_as(head.bias))
    images = torch.stack([prep.task.source.split("test", prep.loaded.eval_transform)[i][0] for i in range(4)])
    with torch.no_grad():
        img = model.encode_image(images, normalize=True)
        from bench.model.heads import class_text_embeddings

        txt = class_text_embeddings(model, ctx.prompt_tokens)
        expected = model.logit_scale.exp() * img @ txt.T + model.logit_bias
        torch.testing.assert_close(prep.method.classifier()(images), expected, rtol=1e-5, atol=1e-5)


def test_flyp_on_a_siglip_model_trains_its_bias_and_wiseft_endpoints_are_exact(bench_home, folder_root):
    base = sigmoid_job(folder_root, "flyp")
    ft = train_one(base, MlflowTracker("tests"))
    zs = train_one(sigmoid_job(folder_root, "zeroshot"), MlflowTracker("tests"))
    weights = torch.load(base.run_dir / "selected.pt", weights_only=False)["state_dict"]
    assert weights["logit_bias"].item() != -10.0  # the bias trained, as in pretraining
    out = run_wiseft(base, derive_jobs(base, [0.0, 1.0]), lambda j: MlflowTracker("tests"))
    drop = ("sel/epoch", "sel/epochs_run")
    strip = lambda s: {k: v for k, v in selected(s).items() if k not in drop}
    assert strip(out[0]) == strip(zs) and strip(out[1]) == strip(ft)
    from mlflow.tracking import MlflowClient

    from bench.tracking.store import tracking_uri

    assert MlflowClient(tracking_uri()).get_run(ft["run_id"]).data.tags["bench.objective"] == "siglip"


def test_the_report_labels_the_mismatched_objective_as_its_own_row(bench_home, folder_root, tmp_path):
    from bench.reports.api import write_report

    train_one(sigmoid_job(folder_root, "zeroshot"), MlflowTracker("tests"))
    train_one(sigmoid_job(folder_root, "flyp", epochs=1), MlflowTracker("tests"))
    train_one(sigmoid_job(folder_root, "flyp", epochs=1, loss="clip"), MlflowTracker("tests"))
    markdown = write_report("tests", None, tmp_path / "report")
    rows = [line.split("|")[1].strip() for line in markdown.splitlines() if line.startswith("| ")]
    assert "FLYP" in rows and "FLYP (InfoNCE loss, mismatched)" in rows
    assert rows.index("FLYP (InfoNCE loss, mismatched)") == rows.index("FLYP") + 1


def test_validation_loss_follows_the_models_scoring():
    from bench.train.evaluate import validation_loss

    logits = torch.tensor([[2.0, -1.0, -3.0], [-2.0, 0.5, -1.0]])
    labels = torch.tensor([0, 1])
    assert validation_loss(logits, labels, "clip") == pytest.approx(
        torch.nn.functional.cross_entropy(logits, labels).item())
    # one-vs-rest: -log sigmoid(true class) - sum log sigmoid(-other classes), averaged over samples
    sig = lambda x: 1 / (1 + math.exp(-x))
    by_hand = (-math.log(sig(2)) - math.log(sig(1)) - math.log(sig(3))
               - math.log(sig(0.5)) - math.log(sig(2)) - math.log(sig(1))) / 2
    assert validation_loss(logits, labels, "siglip") == pytest.approx(by_hand, rel=1e-6)
