"""Standard finetuning (wise-ft recipe): cross-entropy on image encoder + linear head.

The head starts as the zero-shot head (class prompt embeddings x exp(logit_scale), on L2-normalised
features) and trains with the image tower; the text tower is frozen and unused during training.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.model.heads import zeroshot_head
from bench.methods.base import Method, MethodContext, image_tower_parameters, set_requires_grad


class FineTune(Method):
    name = "ft"
    label = "FT"
    wiseft = True
    hparams = {"grad_clip": 1.0, "label_smoothing": 0.0}

    def setup(self, ctx: MethodContext) -> None:
        super().setup(ctx)
        set_requires_grad(self.model, False)
        set_requires_grad(self.model.visual, True)
        self.head = self.initial_head(ctx).to(ctx.device)
        set_requires_grad(self.head, True)

    def initial_head(self, ctx: MethodContext):
        return zeroshot_head(self.model, ctx.prompt_tokens)

    def trainable_parameters(self):
        return image_tower_parameters(self.model) + list(self.head.parameters())

    def training_step(self, images, labels) -> dict:
        logits = self.head(self.model.encode_image(images))  # fp32 scores (LinearHead)
        with torch.autocast(images.device.type, enabled=False):  # the loss in fp32 too, as in the reference code
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.ctx.hparams["label_smoothing"])
        return {"loss": loss}
