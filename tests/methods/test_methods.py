"""Method behaviour on the tiny random-init model and the generated folder task."""
import open_clip
import pytest
import torch

from bench.train.engine import prepare
from bench.model.heads import class_text_embeddings, zeroshot_head
from helpers import make_job


def setup_method_for(folder_root, method, **hp):
    prep, ctx = prepare(make_job(folder_root, method, **hp))
    prep.method.setup(ctx)
    return prep, ctx


def a_batch(prep):
    ds = prep.task.source.split("train", prep.loaded.train_transform)
    items = [ds[i] for i in range(0, len(ds), 5)]
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])


def test_zeroshot_head_equals_open_clip(bench_home, folder_root):
    prep, ctx = setup_method_for(folder_root, "zeroshot")
    templates = ctx.templates
    reference = open_clip.build_zero_shot_classifier(prep.loaded.model, prep.loaded.tokenizer, ctx.classnames,
                                                     templates, num_classes_per_batch=None)
    ours = class_text_embeddings(prep.loaded.model.eval(), ctx.prompt_tokens).detach()
    torch.testing.assert_close(ours, reference.T, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(prep.method.head.weight, reference.T * prep.loaded.model.logit_scale.exp().detach(),
                               rtol=1e-5, atol=1e-5)
    assert torch.all(prep.method.head.bias == 0)


def test_ft_head_starts_equal_to_zeroshot_head(bench_home, folder_root):
    prep, ctx = setup_method_for(folder_root, "ft")
    zs = zeroshot_head(prep.loaded.model, ctx.prompt_tokens)
    assert torch.equal(prep.method.head.weight, zs.weight)
    assert torch.equal(prep.method.head.bias, zs.bias)
    trainable = {id(p) for p in prep.method.trainable_parameters()}
    assert all(id(p) in trainable for p in prep.loaded.model.visual.parameters())
    assert not any(id(p) in trainable for p in prep.loaded.model.transformer.parameters())


def test_flyp_gradient_reaches_both_towers_and_temperature(bench_home, folder_root):
    prep, _ = setup_method_for(folder_root, "flyp")
    images, labels = a_batch(prep)
    out = prep.method.training_step(images, labels)
    out["loss"].backward()
    model = prep.loaded.model
    assert model.logit_scale.grad is not None and model.logit_scale.grad.abs() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.visual.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.transformer.parameters())
    assert prep.method.head is None  # evaluation rebuilds the head from the text tower


def test_flyp_pairs_each_image_with_a_prompt_of_its_class(bench_home, folder_root):
    prep, ctx = setup_method_for(folder_root, "flyp")
    labels = torch.tensor([0, 1, 2, 3] * 20)
    tokens = prep.method.sample_prompts(labels)
    used = set()
    for y, t in zip(labels.tolist(), tokens):
        matches = [k for k in range(ctx.prompt_tokens.shape[1]) if torch.equal(ctx.prompt_tokens[y, k], t)]
        assert matches, "prompt does not belong to the image's class"
        used.update(matches)
    assert used == set(range(ctx.prompt_tokens.shape[1]))  # every template gets drawn


def test_flyp_clamps_temperature_only_when_asked(bench_home, folder_root):
    prep, _ = setup_method_for(folder_root, "flyp", logit_scale_max=5.0)
    with torch.no_grad():
        prep.loaded.model.logit_scale.fill_(3.0)
    prep.method.after_optimizer_step()
    assert prep.loaded.model.logit_scale.item() == pytest.approx(torch.log(torch.tensor(5.0)).item())


def test_flyp_ce_trains_text_tower_with_cross_entropy(bench_home, folder_root):
    prep, _ = setup_method_for(folder_root, "flyp-ce")
    images, labels = a_batch(prep)
    prep.method.training_step(images, labels)["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in prep.loaded.model.transformer.parameters())


def test_lpft_starts_ft_from_the_lp_head(bench_home, folder_root):
    lp, _ = setup_method_for(folder_root, "lp")
    lpft, _ = setup_method_for(folder_root, "lpft")
    torch.testing.assert_close(lpft.method.head.weight, lp.method.head.weight)
    torch.testing.assert_close(lpft.method.head.bias, lp.method.head.bias)
    assert lpft.method.head.weight.requires_grad


def test_l2sp_penalty_is_zero_at_start_and_grows(bench_home, folder_root):
    prep, _ = setup_method_for(folder_root, "l2sp", l2sp_weight=1.0)
    images, labels = a_batch(prep)
    out = prep.method.training_step(images, labels)
    assert out["loss"].item() == pytest.approx(out["ce"].item())
    with torch.no_grad():
        next(prep.loaded.model.visual.parameters()).add_(0.1)
    out = prep.method.training_step(images, labels)
    assert out["loss"].item() > out["ce"].item()
