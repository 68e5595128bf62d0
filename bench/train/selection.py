"""In-run model selection over epochs: the best ID-validation epoch, the last epoch, or the lowest
validation cross-entropy (the few-shot protocol, where epoch 0, the zero-shot model, is a candidate).

(The released FLYP code saved every epoch and selected offline on ID validation; the authors used the
last epoch on ImageNet and the lowest validation loss, ties to the later step, in few-shot runs.)
"""
from __future__ import annotations

EVAL_PREFIXES = ("val/", "id/", "ood/")
RULES = ("best", "last", "min_val_loss")


class Selection:
    def __init__(self, rule: str, val_key: str):
        if rule not in RULES:
            raise ValueError(f"selection must be one of {RULES}, got {rule!r}")
        self.rule, self.val_key = rule, val_key
        self.epoch: int | None = None
        self.metrics: dict = {}

    def update(self, epoch: int, metrics: dict) -> bool:
        """Offer an epoch's metrics; True when it becomes the selected epoch (first best wins ties)."""
        if self.epoch is None or self.rule == "last":
            take = True
        elif self.rule == "min_val_loss":
            take = metrics["val/loss"] <= self.metrics["val/loss"]  # ties go to the later epoch, as FLYP's few-shot code
        else:
            take = metrics[self.val_key] > self.metrics[self.val_key]
        if take:
            self.epoch = epoch
            self.metrics = {k: v for k, v in metrics.items() if k.startswith(EVAL_PREFIXES)}
        return take

    def summary(self) -> dict:
        return {"sel/epoch": self.epoch, **{f"sel/{k}": v for k, v in self.metrics.items()}}

    def state(self) -> dict:
        return {"rule": self.rule, "epoch": self.epoch, "metrics": self.metrics}

    def load(self, state: dict) -> None:
        self.epoch, self.metrics = state["epoch"], state["metrics"]
