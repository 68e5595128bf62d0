"""Linear probe: frozen-encoder features (eval transform, cached on disk by the engine), then multinomial
logistic regression with its L2 strength C chosen on ID validation over a grid.

The probe is fit on L2-normalised features, exactly what the normalising LinearHead sees, so that LP-FT
starts FT from the very classifier LP chose (mixing raw and normalised features would break that init).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.model.heads import LinearHead
from bench.model.logreg import select_logreg
from bench.methods.base import Method, MethodContext

DEFAULT_C_GRID = [10.0 ** (k / 2) for k in range(-4, 9)]  # 1e-2 ... 1e4, half-decade steps


class LinearProbe(Method):
    name = "lp"
    label = "LP"
    trains = False
    frozen_image_tower = True
    hparams = {"lp_c_grid": DEFAULT_C_GRID}

    def setup(self, ctx: MethodContext) -> None:
        super().setup(ctx)
        self.head = fit_probe(ctx).to(ctx.device)


def fit_probe(ctx: MethodContext) -> LinearHead:
    Xtr, ytr = ctx.features("train")
    Xva, yva = ctx.features("val")
    # float64 on CPU keeps L-BFGS well conditioned; on GPU float32 is fast enough and close.
    dtype = torch.float64 if ctx.device.type == "cpu" else torch.float32
    prep = lambda X: F.normalize(X.to(ctx.device, dtype), dim=-1)
    found = select_logreg((prep(Xtr), ytr.to(ctx.device)), (prep(Xva), yva.to(ctx.device)),
                          len(ctx.classnames), ctx.hparams["lp_c_grid"], ctx.score, ctx.log)
    ctx.extras["lp"] = {"C": found["C"], "val": found["score"]}
    ctx.log(f"LP: chose C={found['C']:.3g} (val {found['score']:.4f})")
    return LinearHead(found["weight"].float(), found["bias"].float())
