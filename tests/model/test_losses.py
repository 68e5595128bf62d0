import math

import torch

from bench.model.losses import clip_loss


def hand_infonce(img, txt, scale, labels=None):
    """Symmetric InfoNCE written out term by term."""
    n = len(img)
    sims = [[scale * float(img[i] @ txt[j]) for j in range(n)] for i in range(n)]

    def keep(i, j):
        return labels is None or i == j or labels[i] != labels[j]

    i2t = -sum(sims[i][i] - math.log(sum(math.exp(sims[i][j]) for j in range(n) if keep(i, j))) for i in range(n)) / n
    t2i = -sum(sims[j][j] - math.log(sum(math.exp(sims[i][j]) for i in range(n) if keep(i, j))) for j in range(n)) / n
    return (i2t + t2i) / 2


def fixed_batch():
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(6, 8, generator=g, dtype=torch.float64), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(6, 8, generator=g, dtype=torch.float64), dim=-1)
    return img, txt


def test_clip_loss_equals_hand_computed_symmetric_infonce():
    img, txt = fixed_batch()
    scale = torch.tensor(14.3, dtype=torch.float64)
    assert abs(clip_loss(img, txt, scale).item() - hand_infonce(img, txt, 14.3)) < 1e-10


def test_masked_loss_drops_same_class_negatives():
    img, txt = fixed_batch()
    labels = torch.tensor([0, 1, 0, 2, 1, 3])
    scale = torch.tensor(10.0, dtype=torch.float64)
    masked = clip_loss(img, txt, scale, labels, mask_same_class=True).item()
    assert abs(masked - hand_infonce(img, txt, 10.0, labels.tolist())) < 1e-10
    assert masked < clip_loss(img, txt, scale).item()  # fewer negatives, lower loss
    distinct = torch.arange(6)
    assert abs(clip_loss(img, txt, scale, distinct, True).item() - clip_loss(img, txt, scale).item()) < 1e-10
