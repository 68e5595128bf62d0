"""Contrastive losses shared by FLYP finetuning and toy-CLIP pretraining (finetune like you pretrain)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def clip_loss(image_features, text_features, logit_scale, labels=None, mask_same_class: bool = False):
    """CLIP's symmetric InfoNCE over the batch: pair i is (image i, caption i).

    `logit_scale` is exp(learned temperature). With `mask_same_class`, off-diagonal pairs of the same class
    are removed from both softmax denominators (the paper's class-collision ablation); otherwise same-class
    pairs count as negatives, as in the released FLYP code. The unmasked path uses open_clip's ClipLoss,
    which all-gathers features across ranks under torch.distributed so the contrastive batch is global.
    """
    if not mask_same_class:
        return _open_clip_loss()(image_features, text_features, logit_scale)
    if labels is None:
        raise ValueError("mask_same_class needs the batch labels")
    logits = logit_scale * image_features @ text_features.T
    same = labels[:, None] == labels[None, :]
    off_diag = ~torch.eye(len(labels), dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(same & off_diag, float("-inf"))
    target = torch.arange(len(labels), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


_LOSS = None


def _open_clip_loss():
    global _LOSS
    if _LOSS is None:
        from open_clip import ClipLoss

        dist = torch.distributed
        ddp = dist.is_available() and dist.is_initialized()
        _LOSS = ClipLoss(
            cache_labels=True,
            rank=dist.get_rank() if ddp else 0,
            world_size=dist.get_world_size() if ddp else 1,
            gather_with_grad=ddp,
        )
    return _LOSS
