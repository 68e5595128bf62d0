"""Learning-rate schedule of the reference code, stepped every iteration."""
import math


def cosine_lr(step: int, base_lr: float, warmup: int, total: int) -> float:
    """Linear warmup to base_lr over `warmup` steps, then cosine decay to 0 at `total`.

    Same formula as FLYP/wise-ft `cosine_lr`, without FLYP's added min_lr and without the division by
    zero when warmup == total (then the schedule is warmup only).
    """
    if step < warmup:
        return base_lr * (step + 1) / warmup
    span = max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(step - warmup, span) / span)) * base_lr
