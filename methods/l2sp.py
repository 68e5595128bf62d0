"""L2-SP (Li et al. 2018): FT plus an L2 penalty pulling the pretrained image encoder towards its starting
weights; ordinary weight decay applies only to the new parameters (the linear head).

The penalty replaces weight decay on the backbone: decaying it towards zero as well would pull it away
from the very point L2-SP anchors it to. The engine builds one AdamW over `trainable_parameters()` with
the run's `wd`; a method that defines `optimizer_groups(weight_decay)` asks for per-group decay instead
(the backbone at `backbone_wd`, 0 by default; the head at the run's `wd`).
"""
from __future__ import annotations

from bench.methods.base import MethodContext, image_tower_parameters
from bench.methods.ft import FineTune


class L2SP(FineTune):
    name = "l2sp"
    label = "L2-SP"
    # backbone_wd: decay of the pretrained image tower; 0 leaves the penalty as its only regulariser.
    hparams = {**FineTune.hparams, "l2sp_weight": 0.01, "backbone_wd": 0.0}

    def setup(self, ctx: MethodContext) -> None:
        super().setup(ctx)
        self.anchor = [p.detach().clone() for p in image_tower_parameters(self.model)]

    def penalty(self):
        """Squared distance of the image tower from its pretrained weights (the head is not anchored)."""
        return sum(((p - p0) ** 2).sum() for p, p0 in zip(image_tower_parameters(self.model), self.anchor))

    def training_step(self, images, labels) -> dict:
        out = super().training_step(images, labels)
        out["ce"] = out["loss"].detach()
        out["loss"] = out["loss"] + self.ctx.hparams["l2sp_weight"] * self.penalty()
        return out

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        """AdamW parameter groups covering exactly `trainable_parameters()`: the pretrained backbone without
        decay, the new head with the run's decay."""
        return [{"params": [p for p in image_tower_parameters(self.model) if p.requires_grad],
                 "weight_decay": self.ctx.hparams.get("backbone_wd", 0.0)},
                {"params": [p for p in self.head.parameters() if p.requires_grad], "weight_decay": weight_decay}]
