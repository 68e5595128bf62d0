"""The Method contract (DomainBed's Algorithm, adapted to zero-shot image-text models).

The engine owns the loop (data, optimiser, schedule, evaluation, checkpoints); a method decides what
trains, what the loss is, and how logits are computed. Every method's state is
`{"model": CLIP state_dict, "head": LinearHead state_dict or None}`: None means "rebuild the head from
the text tower", which is what lets WiSE-FT interpolate any finetuned run against the zero-shot model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import nn

from bench.model.heads import LinearHead, zeroshot_head


@dataclass
class MethodContext:
    model: Any                    # open_clip CLIP, already on `device`
    tokenizer: Callable
    classnames: list[str]
    templates: list[str]
    prompt_tokens: torch.Tensor   # [C, T, L], every class x template prompt tokenised once
    hparams: dict
    device: torch.device
    # Gives frozen-encoder features of a task split for linear probes: features(role) -> (X, y).
    features: Callable[[str], tuple[torch.Tensor, torch.Tensor]] | None = None
    score: Callable[[torch.Tensor, torch.Tensor], float] | None = None  # the task's validation metric
    log: Callable[[str], None] = print
    extras: dict = field(default_factory=dict)


class Method:
    name: str = ""
    label: str = ""              # row label in result tables
    trains: bool = True          # runs the engine's epoch loop
    wiseft: bool = False         # a finetuning method that WiSE-FT can ensemble with zero-shot
    frozen_image_tower: bool = False  # logits are head(pretrained image features): evaluation reuses cached features
    hparams: dict = {}           # method-specific defaults, merged over the engine's common ones

    def __init__(self) -> None:
        self.ctx: MethodContext | None = None
        self.model: nn.Module | None = None
        self.head: LinearHead | None = None
        self._version = 0         # bumped whenever weights change; keys the cached classifier
        self._cached: tuple[int, Callable] | None = None

    # --- setup and training -------------------------------------------------------------------
    def setup(self, ctx: MethodContext) -> None:
        self.ctx = ctx
        self.model = ctx.model

    def trainable_parameters(self) -> Iterable[nn.Parameter]:
        return []

    def optimizer_groups(self, weight_decay: float) -> list[dict] | None:
        """AdamW parameter groups with their own decay (L2-SP); None: one group at the run's `wd`."""
        return None

    def tags(self) -> dict:
        """Facts the method decided at setup, recorded as MLflow tags (e.g. FLYP's objective)."""
        return {}

    def training_step(self, images: torch.Tensor, labels: torch.Tensor) -> dict:
        raise NotImplementedError(f"method '{self.name}' does not train")

    def backward_step(self, images: torch.Tensor, labels: torch.Tensor, micro_batch: int, backward, autocast) -> torch.Tensor:
        """Forward and backward of this rank's batch; returns the detached loss. `backward(loss)` is the
        engine's (through the fp16 scaler), `autocast()` its precision context. With `micro_batch`, at most that
        many images go through the towers at once and gradients accumulate over the chunks, each chunk's loss
        weighted by its share of the batch: for a per-sample mean (plus any batch-independent term, such as
        L2-SP's penalty) that is exactly the whole batch's gradient. Contrastive methods, whose loss couples
        the samples, override this with gradient caching (FLYP)."""
        n = len(labels)
        if not micro_batch or micro_batch >= n:
            with autocast():
                loss = self.training_step(images, labels)["loss"].float()
            backward(loss)
            return loss.detach()
        total = torch.zeros((), device=images.device)
        for start in range(0, n, micro_batch):
            part = slice(start, start + micro_batch)
            with autocast():
                loss = self.training_step(images[part], labels[part])["loss"].float() * (len(labels[part]) / n)
            backward(loss)
            total += loss.detach()
        return total

    def after_optimizer_step(self) -> None:
        """Called after every optimiser step (clamps, caches)."""
        self._version += 1

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)
        if self.head is not None:
            self.head.train(mode)

    # --- evaluation ----------------------------------------------------------------------------
    def classifier(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """images -> logits, cached until the weights change."""
        if self._cached is None or self._cached[0] != self._version:
            self._cached = (self._version, self._build_classifier())
        return self._cached[1]

    def _build_classifier(self) -> Callable[[torch.Tensor], torch.Tensor]:
        head = self.head if self.head is not None else zeroshot_head(self.model, self.ctx.prompt_tokens)
        model = self.model

        def logits(images: torch.Tensor) -> torch.Tensor:
            return head(model.encode_image(images))

        return logits

    # --- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "head": None if self.head is None else self.head.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if state.get("head") is not None:
            if self.head is None:
                w = state["head"]["weight"]
                self.head = LinearHead(torch.zeros_like(w)).to(w.device)
            self.head.load_state_dict(state["head"])
            self.head.to(self.ctx.device)
        else:
            self.head = None
        self._version += 1


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def image_tower_parameters(model) -> list[nn.Parameter]:
    return list(model.visual.parameters())
