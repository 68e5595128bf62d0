"""LP-FT (Kumar et al. 2022): fit the linear probe first, then finetune everything from the LP head."""
from __future__ import annotations

from bench.methods.base import MethodContext
from bench.methods.ft import FineTune
from bench.methods.lp import DEFAULT_C_GRID, fit_probe


class LPFT(FineTune):
    name = "lpft"
    label = "LP-FT"
    hparams = {**FineTune.hparams, "lp_c_grid": DEFAULT_C_GRID}

    def initial_head(self, ctx: MethodContext):
        return fit_probe(ctx)
