"""Importing `wilds` safely, and the two compatibility patches verified in research/anchors.md §1.4.

1. `import wilds` starts a non-daemon thread that asks PyPI (package `outdated`) whether wilds is current;
   offline it can hold the process open. We hide `outdated` during that one import, so wilds skips the check.
2. FMoW's eval averages over groups with `torch_scatter`, which wilds does not depend on (PyPI has only an
   old sdist). `avg_over_groups` is replaced by the same mean computed with `index_add_` (empty groups: 0, as
   torch_scatter's mean gives).
3. FMoW parses timestamps with `pd.to_datetime`; the real CSV mixes "...:59Z" and "...:59.643Z", which pandas
   >= 2 refuses without format="ISO8601" (wilds issue #146). The FMoW module gets a pandas whose to_datetime
   passes that format; pandas itself is untouched.
"""
from __future__ import annotations

import importlib
import sys
import types
from functools import partial

import torch

_PATCHED = False
_ABSENT = object()


def import_wilds():
    """`import wilds` without the PyPI version-check thread, with the patches applied."""
    if "wilds" not in sys.modules:
        saved = sys.modules.get("outdated", _ABSENT)
        sys.modules["outdated"] = None  # `from outdated import check_outdated` now raises ImportError
        try:
            import wilds  # noqa: F401
        finally:
            if saved is _ABSENT:
                sys.modules.pop("outdated", None)
            else:
                sys.modules["outdated"] = saved
    apply_patches()
    return sys.modules["wilds"]



def avg_over_groups(v: torch.Tensor, g: torch.Tensor, n_groups: int):
    """wilds.common.utils.avg_over_groups without torch_scatter: (mean of v per group, count per group)."""
    from wilds.common.utils import get_counts

    assert v.device == g.device and v.numel() == g.numel()
    counts = get_counts(g, n_groups)
    v = v.float()
    sums = torch.zeros(n_groups, dtype=v.dtype, device=v.device).index_add_(0, g.long(), v)
    return sums / counts.clamp(min=1), counts


class _PandasISO8601(types.ModuleType):
    """pandas, except that to_datetime parses mixed ISO-8601 strings."""

    def __init__(self, pd):
        super().__init__("pandas")
        self._pd = pd
        self.to_datetime = partial(pd.to_datetime, format="ISO8601")

    def __getattr__(self, name):
        return getattr(self._pd, name)


def apply_patches() -> None:
    global _PATCHED
    if _PATCHED:
        return
    import pandas as pd

    for module in ("wilds.common.utils", "wilds.common.metrics.metric", "wilds.common.metrics.all_metrics",
                   "wilds.common.metrics.loss"):
        mod = importlib.import_module(module)
        if hasattr(mod, "avg_over_groups"):
            mod.avg_over_groups = avg_over_groups
    if int(pd.__version__.split(".")[0]) >= 2:
        fmow = importlib.import_module("wilds.datasets.fmow_dataset")
        if not isinstance(fmow.pd, _PandasISO8601):
            fmow.pd = _PandasISO8601(pd)
    _PATCHED = True
