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


def class_text_embeddings(model, prompt_tokens: torch.Tensor) -> torch.Tensor:
    """Per class: embed every template, L2-normalise, average, re-normalise. Returns [C, D].

    Runs with whatever grad mode the caller chose (FLYP-CE needs gradients through the text tower).
    """
    n_cls, n_tpl, ctx = prompt_tokens.shape
    device = next(model.parameters()).device
    emb = model.encode_text(prompt_tokens.view(-1, ctx).to(device), normalize=True)
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
        if self.normalize:
            features = F.normalize(features, dim=-1)
        return features @ self.weight.T + self.bias


@torch.no_grad()
def zeroshot_head(model, prompt_tokens: torch.Tensor) -> LinearHead:
    """The zero-shot head: class text embeddings scaled by the model's temperature, bias 0."""
    was_training = model.training
    model.eval()
    weight = class_text_embeddings(model, prompt_tokens) * model.logit_scale.exp()
    model.train(was_training)
    return LinearHead(weight)
