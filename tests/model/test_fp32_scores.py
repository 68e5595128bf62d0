"""Scores in fp32 whatever the precision (issue 21, item 1): under bf16 autocast the towers run in bf16 but the
head's matmul, the logits and the losses stay fp32, so evaluation in bf16 stays close to fp32 evaluation.
The toy CLIP (`toy-clip`, the committed checkpoint) on toy-shift's ID validation set."""
from __future__ import annotations

import pytest
import torch

from bench.train.evaluate import validation_loss
from bench.train.precision import resolve_precision, supported


def _bf16_head_as_before(head, features):
    """The old LinearHead.forward: normalise and `features @ W.T` inside autocast, so the matmul ran in bf16."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        f = torch.nn.functional.normalize(features, dim=-1)
        return f @ head.weight.T + head.bias


def test_bf16_scores_stay_close_to_fp32_and_closer_than_a_bf16_head(bench_home):
    ok, why = supported("bf16", "cpu")
    if not ok:
        pytest.skip(why)
    from bench.spec.job import Job
    from bench.spec.suites import load_suite
    from bench.model.heads import zeroshot_head
    from bench.train.engine import prepare

    spec = load_suite("toy")["tasks"]["toy-shift"]
    job = Job(suite="toy", experiment="toy", task="toy-shift", task_spec=spec, method="zeroshot", hparams={},
              seed=0, model={"arch": "toy-clip", "pretrained": "default"}, runtime={"workers": 0, "device": "cpu"})
    prep, ctx = prepare(job)
    model = prep.loaded.model
    ds = prep.task.source.split("rendition", prep.loaded.eval_transform)  # 600 images, the example
    images = torch.stack([ds[i][0] for i in range(len(ds))])
    labels = torch.tensor([ds[i][1] for i in range(len(ds))])
    zs = zeroshot_head(model, ctx.prompt_tokens)
    with torch.inference_mode():
        ref = zs(model.encode_image(images))                       # fp32 everywhere
        with resolve_precision("bf16", "cpu").inference():
            feats = model.encode_image(images)                     # towers in bf16
            new = zs(feats)                                        # the head now: fp32 under autocast
            old = _bf16_head_as_before(zs, feats).float()          # the head before: bf16 matmul
        exact = zs(feats.float())
    assert new.dtype == torch.float32 and torch.equal(new, exact)
    err = lambda logits: (logits - ref).abs().mean().item()
    flips = lambda logits: int((logits.argmax(1) != ref.argmax(1)).sum())
    dloss = lambda logits: abs(validation_loss(logits, labels) - validation_loss(ref, labels))
    print(f"\nn={len(labels)} mean|logit diff| {err(new):.4f} (bf16 head {err(old):.4f}), max {(new - ref).abs().max():.4f}; "
          f"argmax flips {flips(new)} ({flips(old)}); |val/loss diff| {dloss(new):.5f} ({dloss(old):.5f})")
    assert err(new) < 0.95 * err(old) and flips(new) < flips(old)
    assert (new - ref).abs().max() < 0.25 and dloss(new) < 1e-3 and flips(new) <= 3  # bf16 towers: bounded
