"""Gradient caching is exact with randomness in the towers (issue 21, item 2): each chunk's second pass replays
the RNG state of its first, so dropout and patch dropout draw the same masks; BatchNorm models are refused."""
from __future__ import annotations

from collections import OrderedDict
from contextlib import nullcontext

import pytest
import torch
from helpers import make_job

from bench.train.engine import check_micro_batch, prepare


def _add_randomness(model, p: float = 0.3) -> None:
    """Dropout after every MLP of both towers and patch dropout in the image tower (open_clip's own modules)."""
    from open_clip.transformer import PatchDropout

    model.visual.patch_dropout = PatchDropout(0.5)
    for tower in (model.visual.transformer, model.transformer):
        for block in tower.resblocks:
            block.mlp = torch.nn.Sequential(OrderedDict([*block.mlp.named_children(), ("drop", torch.nn.Dropout(p))]))


def test_gradient_caching_with_dropout_gives_the_batch_loss_and_gradients(bench_home, folder_root):
    torch.manual_seed(0)
    prep, ctx = prepare(make_job(folder_root, "flyp"))
    method = prep.method
    method.setup(ctx)
    _add_randomness(method.model)
    method.train(True)
    ds = prep.task.source.split("train", prep.loaded.eval_transform)
    images = torch.stack([ds[i][0] for i in range(10)])
    labels = torch.tensor([ds[i][1] for i in range(10)])
    params = [p for p in method.trainable_parameters() if p.requires_grad]
    chunks = [slice(s, s + 3) for s in range(0, 10, 3)]

    def reference():
        """The whole batch's loss through one graph, its chunks drawing the randomness in the cached pass's order
        (a single forward of all 10 images draws masks of another shape, so another loss)."""
        prompts = method.sample_prompts(labels)
        image = torch.cat([method.model.encode_image(images[c], normalize=True) for c in chunks])
        text = torch.cat([method.model.encode_text(prompts[c], normalize=True) for c in chunks])
        loss = method.contrastive_loss(image, text, labels)
        loss.backward()
        return loss.detach()

    def step(fn):
        for p in params:
            p.grad = None
        torch.manual_seed(5)
        loss = fn()
        return loss, [p.grad.clone() for p in params], torch.get_rng_state()

    ref_loss, ref_grads, ref_rng = step(reference)
    loss, grads, rng = step(lambda: method.backward_step(images, labels, 3, lambda l: l.backward(), nullcontext))
    torch.manual_seed(6)  # another mask: the gradients really depend on the draws
    other_loss = method.backward_step(images, labels, 3, lambda l: l.backward(), nullcontext)
    assert abs(other_loss - ref_loss) > 1e-4
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)
    assert torch.equal(rng, ref_rng)  # the stream continues where one pass would have left it


def test_micro_batch_is_refused_for_batchnorm_models_with_the_reason():
    from bench.errors import BenchError

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    with pytest.raises(BenchError, match="BatchNorm"):
        check_micro_batch(model, 4)
    check_micro_batch(model, 0)  # no chunks: nothing to refuse
    check_micro_batch(torch.nn.Sequential(torch.nn.LayerNorm(4)), 4)
