"""The paper's protocol by default: FLYP's temperature is free to rise; L2-SP anchors the pretrained image
tower to its start and decays only the new head."""
import math

import torch

from bench.train.precision import make_adamw
from test_methods import a_batch, setup_method_for


def test_flyp_temperature_rises_above_its_start_under_the_default(bench_home, folder_root):
    prep, ctx = setup_method_for(folder_root, "flyp")
    assert ctx.hparams["logit_scale_max"] == 0.0  # unclamped, as the released FLYP code
    model = prep.loaded.model
    with torch.no_grad():
        model.logit_scale.fill_(math.log(100.0))  # OpenAI's ViT-B/16 starts at exactly 100
    start = model.logit_scale.item()
    # A batch whose images already match their prompts (image features = the prompts' text features): the
    # contrastive loss then falls as the temperature sharpens, so its gradient asks for a larger scale.
    images, labels = a_batch(prep)
    tokens = prep.method.sample_prompts(labels)
    prep.method.sample_prompts = lambda _labels: tokens
    model.encode_image = lambda _images, normalize=True: model.encode_text(tokens, normalize=normalize).detach()
    prep.method.training_step(images, labels)["loss"].backward()
    make_adamw([model.logit_scale], lr=0.01).step()
    prep.method.after_optimizer_step()
    assert model.logit_scale.grad.item() < 0 and model.logit_scale.item() > start
    # The clamp stays a switch: with logit_scale_max=100 the same step is cut back to ln(100).
    clamped, _ = setup_method_for(folder_root, "flyp", logit_scale_max=100.0)
    with torch.no_grad():
        clamped.loaded.model.logit_scale.fill_(start + 0.5)
    clamped.method.after_optimizer_step()
    assert clamped.loaded.model.logit_scale.item() == torch.tensor(math.log(100.0)).item()


def test_l2sp_penalty_acts_on_the_image_tower_only(bench_home, folder_root):
    prep, _ = setup_method_for(folder_root, "l2sp", l2sp_weight=1.0)
    model, head = prep.loaded.model, prep.method.head
    with torch.no_grad():
        for p in list(model.visual.parameters()) + list(head.parameters()):
            p.add_(0.01)
    penalty = prep.method.penalty()
    penalty.backward()
    for p in model.visual.parameters():  # d/dp |p - p0|^2 = 2 (p - p0) = 0.02
        torch.testing.assert_close(p.grad, torch.full_like(p, 0.02))
    assert all(p.grad is None for p in head.parameters())
    images, labels = a_batch(prep)
    out = prep.method.training_step(images, labels)
    assert out["loss"].item() > out["ce"].item()


def test_l2sp_decays_only_the_new_head(bench_home, folder_root):
    prep, ctx = setup_method_for(folder_root, "l2sp", wd=0.5)
    model, head = prep.loaded.model, prep.method.head
    groups = prep.method.optimizer_groups(ctx.hparams["wd"])
    trainable = {id(p) for p in prep.method.trainable_parameters() if p.requires_grad}
    assert sorted(id(p) for g in groups for p in g["params"]) == sorted(trainable)  # every parameter, once
    backbone, new = groups
    assert backbone["weight_decay"] == 0.0 and new["weight_decay"] == 0.5
    assert {id(p) for p in backbone["params"]} == {id(p) for p in model.visual.parameters()}
    assert {id(p) for p in new["params"]} == {id(p) for p in head.parameters()}
    # One AdamW step with zero gradients: decay alone moves the head towards zero, the backbone stays put.
    before_visual = [p.detach().clone() for p in model.visual.parameters()]
    before_head = head.weight.detach().clone()
    for g in groups:
        for p in g["params"]:
            p.grad = torch.zeros_like(p)
    make_adamw(groups, lr=0.1, weight_decay=ctx.hparams["wd"]).step()
    assert all(torch.equal(a, b) for a, b in zip(before_visual, model.visual.parameters()))
    torch.testing.assert_close(head.weight.detach(), before_head * (1 - 0.1 * 0.5))


def test_the_engine_builds_l2sps_groups_backbone_undecayed(bench_home, folder_root, monkeypatch):
    """The engine asks the method for its AdamW groups: with wd=0.5 and no gradient, an L2-SP step leaves
    the backbone where it was and decays only the head."""
    import torch

    import bench.train.engine as engine
    from helpers import make_job

    captured = {}
    original = engine.make_adamw

    def spy(groups, **kw):
        captured["groups"] = groups
        return original(groups, **kw)

    monkeypatch.setattr(engine, "make_adamw", spy)
    from bench.jobs.lifecycle import train_one

    train_one(make_job(folder_root, "l2sp", epochs=1, wd=0.5))
    decays = sorted(g["weight_decay"] for g in captured["groups"])
    assert decays == [0.0, 0.5] and all(isinstance(g, dict) for g in captured["groups"])
    assert torch.is_tensor(captured["groups"][0]["params"][0])
