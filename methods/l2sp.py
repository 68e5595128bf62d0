"""L2-SP (Li et al. 2018): FT plus an L2 penalty pulling the image encoder towards its pretrained weights."""
from __future__ import annotations

from bench.methods.base import MethodContext
from bench.methods.ft import FineTune


class L2SP(FineTune):
    name = "l2sp"
    label = "L2-SP"
    hparams = {**FineTune.hparams, "l2sp_weight": 0.01}

    def setup(self, ctx: MethodContext) -> None:
        super().setup(ctx)
        self.anchor = [p.detach().clone() for p in self.model.visual.parameters()]

    def training_step(self, images, labels) -> dict:
        out = super().training_step(images, labels)
        penalty = sum(((p - p0) ** 2).sum() for p, p0 in zip(self.model.visual.parameters(), self.anchor))
        out["ce"] = out["loss"].detach()
        out["loss"] = out["loss"] + self.ctx.hparams["l2sp_weight"] * penalty
        return out
