"""Classification heads built from text prompts (zero-shot) or learned (linear probe, FT).

Convention (wise-ft / FLYP reference code): a head normalises the image features and computes
`features @ W.T + b`; zero-shot W holds the class text embeddings times exp(logit_scale), so logits are
the model's scaled cosine similarities and bias starts at 0.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
import torch.nn.functional as F


def tokenize_prompts(tokenizer, classnames: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """All class x template prompts, tokenised once: LongTensor [C, T, context_length]."""
    texts = [t.format(c) for c in classnames for t in templates]
    tokens = tokenizer(texts)
    return tokens.view(len(classnames), len(templates), -1)


# Prompts per text-tower forward pass: bounded activation memory (80,000 ImageNet prompts at once take tens
# of GB in fp32), still large enough to keep a GPU busy.
PROMPT_CHUNK = 1024


def class_text_embeddings(model, prompt_tokens: torch.Tensor, chunk_size: int = PROMPT_CHUNK) -> torch.Tensor:
    """Per class: embed every template, L2-normalise, average, re-normalise. Returns [C, D] in fp32.

    Prompts go through the text tower `chunk_size` at a time; each prompt is encoded independently, so
    the result equals one all-at-once pass. Runs with whatever grad mode the caller chose (FLYP-CE needs
    gradients through the text tower).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    n_cls, n_tpl, ctx = prompt_tokens.shape
    device = next(model.parameters()).device
    flat = prompt_tokens.reshape(-1, ctx)
    # fp32 before averaging: under autocast the tower returns bf16/fp16 embeddings.
    emb = torch.cat([model.encode_text(flat[i:i + chunk_size].to(device), normalize=True).float()
                     for i in range(0, flat.shape[0], chunk_size)])
    emb = emb.view(n_cls, n_tpl, -1).mean(dim=1)
    return F.normalize(emb, dim=-1)


class LinearHead(nn.Module):
    """Linear classifier on L2-normalised features (wise-ft's ClassificationHead)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, normalize: bool = True):
        super().__init__()
        self.normalize = normalize
        self.weight = nn.Parameter(weight.detach().clone().float())
        b = torch.zeros(weight.shape[0]) if bias is None else bias.detach().clone().float()
        self.bias = nn.Parameter(b.to(weight.device))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # Scores in fp32 whatever the towers ran in: zero-shot logits near 100 sit where bf16 steps are
        # 0.25-0.5, so near-ties would flip and val/loss (a selection criterion) would be quantised.
        with torch.autocast(features.device.type, enabled=False):
            features = features.float()
            if self.normalize:
                features = F.normalize(features, dim=-1)
            return features @ self.weight.T + self.bias


@torch.no_grad()
def zeroshot_head(model, prompt_tokens: torch.Tensor, chunk_size: int = PROMPT_CHUNK) -> LinearHead:
    """The zero-shot head: class text embeddings scaled by the model's temperature; bias 0 for CLIP models
    and the learned logit bias for SigLIP models, so that logits are the model's own scores (sigmoid logits
    for SigLIP: the same argmax, but FT starts from, and WiSE-FT interpolates, the model's own scoring)."""
    was_training = model.training
    model.eval()
    weight = class_text_embeddings(model, prompt_tokens, chunk_size) * model.logit_scale.exp().float()
    model.train(was_training)
    logit_bias = getattr(model, "logit_bias", None)
    bias = None if logit_bias is None else logit_bias.detach().float().reshape(-1).expand(weight.shape[0])
    return LinearHead(weight, bias)
