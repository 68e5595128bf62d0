"""FLYP-CE, the paper's cross-entropy ablation (released as FLYP's ce_ablation.py).

Each step the current text tower embeds one random template per class; those normalised embeddings,
times exp(logit_scale), are the linear head; the loss is cross-entropy over classes. Both towers and
the temperature train. Evaluation rebuilds the head from all templates, as FLYP does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.methods.base import Method
from bench.methods.flyp import FLYP


class FLYPCE(FLYP):
    name = "flyp-ce"
    label = "FLYP-CE"
    hparams = {"grad_clip": 0.0, "logit_scale_max": 0.0}  # unclamped, as released and as FLYP
    backward_step = Method.backward_step  # a per-sample cross-entropy: micro-batches accumulate gradients

    def training_step(self, images, labels) -> dict:
        tokens = self.device_tokens(images.device)
        n_cls, n_tpl, _ = tokens.shape
        choice = torch.randint(n_tpl, (n_cls,)).to(images.device, non_blocking=True)
        prompts = tokens[torch.arange(n_cls, device=images.device), choice]
        text = self.model.encode_text(prompts, normalize=True)
        image = self.model.encode_image(images, normalize=True)
        scale = self.model.logit_scale.exp()
        with torch.autocast(images.device.type, enabled=False):  # logits scaled by ~100 need fp32
            loss = F.cross_entropy(scale * image.float() @ text.float().T, labels)
        return {"loss": loss, "logit_scale": scale.detach()}
