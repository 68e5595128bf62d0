"""FLYP (Goyal et al. 2022): finetune with CLIP's own contrastive loss between images and class prompts.

Each training image of class y is paired with `template(classname_y)`, the template drawn uniformly at
random per sample per step (the engine seeds the global RNG per epoch, so draws are reproducible and
resumable). Both towers and the temperature train; the head is rebuilt from the text tower for evaluation.
Choice recorded in `logit_scale_max`: the temperature is clamped to [0, ln(max)] as open_clip's trainer
does (100); set 0 to leave it unclamped like the released FLYP code.
"""
from __future__ import annotations

import math

import torch

from bench.losses import clip_loss
from bench.methods.base import Method, MethodContext, set_requires_grad


class FLYP(Method):
    name = "flyp"
    label = "FLYP"
    wiseft = True
    hparams = {"grad_clip": 0.0, "mask_same_class": False, "logit_scale_max": 100.0}

    def setup(self, ctx: MethodContext) -> None:
        super().setup(ctx)
        set_requires_grad(self.model, True)
        self.head = None  # always rebuilt from the current text tower

    def trainable_parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def sample_prompts(self, labels: torch.Tensor) -> torch.Tensor:
        """One random template per sample, drawn from the CPU RNG (the same draws on any device) and indexed
        on the labels' device: no device-to-host copy of the labels, so no sync per step."""
        tokens = self.device_tokens(labels.device)
        choice = torch.randint(tokens.shape[1], (len(labels),))
        return tokens[labels, choice.to(labels.device, non_blocking=True)]

    def device_tokens(self, device) -> torch.Tensor:
        """Every class x template prompt, copied to `device` once."""
        cached = getattr(self, "_tokens", None)
        if cached is None or cached.device != torch.device(device):
            self._tokens = self.ctx.prompt_tokens.to(device)
        return self._tokens

    def training_step(self, images, labels) -> dict:
        image_features = self.model.encode_image(images, normalize=True)
        text_features = self.model.encode_text(self.sample_prompts(labels), normalize=True)
        scale = self.model.logit_scale.exp()
        loss = clip_loss(image_features, text_features, scale, labels, self.ctx.hparams["mask_same_class"])
        return {"loss": loss, "logit_scale": scale.detach()}

    def after_optimizer_step(self) -> None:
        super().after_optimizer_step()
        clamp_logit_scale(self.model, self.ctx.hparams["logit_scale_max"])


def clamp_logit_scale(model, max_scale: float) -> None:
    if max_scale and max_scale > 0:
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(max_scale))
