"""Contrastive losses shared by FLYP finetuning and toy-CLIP pretraining (finetune like you pretrain)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def clip_loss(image_features, text_features, logit_scale, labels=None, mask_same_class: bool = False):
    """CLIP's symmetric InfoNCE over the batch: pair i is (image i, caption i).

    `logit_scale` is exp(learned temperature). With `mask_same_class`, off-diagonal pairs of the same class
    are removed from both softmax denominators (the paper's class-collision ablation); otherwise same-class
    pairs count as negatives, as in the released FLYP code. The unmasked path is open_clip's ClipLoss. Under
    torch.distributed the caller passes the global batch (`gather_batch`), so the logits are global x global.
    """
    # In fp32 even under autocast: logits scaled by a temperature near 100 lose whole units in bf16.
    with torch.autocast(image_features.device.type, enabled=False):
        return _clip_loss(_wide(image_features), _wide(text_features), _wide(logit_scale), labels, mask_same_class)


def _wide(x: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 -> fp32; fp32 and fp64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _clip_loss(image_features, text_features, logit_scale, labels, mask_same_class: bool):
    if not mask_same_class:
        from open_clip import ClipLoss

        return ClipLoss()(image_features, text_features, logit_scale)  # one process's (or the gathered) batch
    if labels is None:
        raise ValueError("mask_same_class needs the batch labels")
    logits = logit_scale * image_features @ text_features.T
    same = labels[:, None] == labels[None, :]
    off_diag = ~torch.eye(len(labels), dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(same & off_diag, float("-inf"))
    target = torch.arange(len(labels), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def gather_batch(image_features, text_features, labels=None):
    """The global contrastive batch on every rank: all ranks' features (open_clip's all-gather with gradients,
    so each rank's features get the gradient of the whole-batch loss) and labels, in rank order. The loss of
    the gathered batch is then exactly the one-process loss; `bench.runtime.distributed.average_gradients` finishes the
    equivalence (each rank's local gradient is world x its share, and the mean over ranks is their sum).
    In one process, the identity."""
    from bench.runtime.distributed import current

    rank = current()
    if not rank.distributed:
        return image_features, text_features, labels
    import warnings

    import torch.distributed as dist
    from open_clip.loss import gather_features

    with warnings.catch_warnings():  # torch 2.14 deprecates the autograd all_gather open_clip calls
        warnings.simplefilter("ignore", FutureWarning)
        img, txt = gather_features(image_features, text_features, local_loss=False, gather_with_grad=True,
                                   rank=rank.rank, world_size=rank.world)
    if labels is not None:
        parts = [torch.empty_like(labels) for _ in range(rank.world)]
        dist.all_gather(parts, labels.contiguous())
        labels = torch.cat(parts)
    return img, txt, labels


def siglip_loss(image_features, text_features, logit_scale, logit_bias, labels=None, same_class_positive: bool = False):
    """SigLIP's pairwise sigmoid loss (Zhai et al. 2023) with the learned temperature and bias, in fp32.

    Pair (i, j) is positive when i == j; every other pair, same-class ones included, is a negative, exactly as
    in pretraining (and as InfoNCE treats them). With `same_class_positive`, pairs of the same class are
    positives too (the multi-positive variant); only those entries of the target matrix change.
    """
    with torch.autocast(image_features.device.type, enabled=False):
        img, txt = _wide(image_features), _wide(text_features)
        scale, bias = _wide(logit_scale), _wide(logit_bias)
        if not same_class_positive:
            from open_clip.loss import SigLipLoss

            return SigLipLoss()(img, txt, scale, bias)
        if labels is None:
            raise ValueError("same_class_positive needs the batch labels")
        logits = scale * img @ txt.T + bias
        targets = 2.0 * (labels[:, None] == labels[None, :]).to(logits.dtype) - 1.0
        return -F.logsigmoid(targets * logits).sum() / img.shape[0]


def pretraining_objective(model) -> str:
    """'siglip' for a model pretrained with the sigmoid loss (its config gives it a learned logit bias, as
    every open_clip SigLIP config does with init_logit_bias), else 'clip'."""
    return "siglip" if getattr(model, "logit_bias", None) is not None else "clip"
