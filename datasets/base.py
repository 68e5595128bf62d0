"""The dataset contract shared by every loader (folder trees, toy world, real benchmarks).

A `DatasetSource` knows its class names, prompt templates and splits. `split(name, transform)`
returns a torch Dataset yielding `(image_tensor, label)` or `(image_tensor, label, metadata)`; images
are PIL RGB before `transform`.
Loaders never download: a missing dataset raises `BenchError` naming the path and expected layout.
"""
from __future__ import annotations

from typing import Callable, Sequence

from bench.errors import unknown_name

DEFAULT_TEMPLATES = ["a photo of a {}."]


class DatasetSource:
    name: str = "dataset"

    def __init__(self) -> None:
        self.classnames: list[str] = []
        self.templates: list[str] = list(DEFAULT_TEMPLATES)

    # Subclasses override these two.
    def split_names(self) -> list[str]:
        raise NotImplementedError

    def _build_split(self, split: str, transform: Callable | None):
        raise NotImplementedError

    def split(self, split: str, transform: Callable | None = None):
        if split not in self.split_names():
            raise unknown_name(f"split of dataset '{self.name}'", split, self.split_names())
        return self._build_split(split, transform)

    def project_logits(self, logits):
        """Map full-head logits to this dataset's label space (identity unless a subset is scored)."""
        return logits

    def official_metrics(self, split: str, logits, labels, metadata) -> dict[str, float] | None:
        """Dataset-defined metrics (e.g. WILDS' own eval: F1-macro_all, acc_worst_region) on projected
        logits; a task's `metric` may name any key returned here. None: only bench.metrics apply."""
        return None

    def describe(self) -> dict:
        """Facts recorded with a run (split seeds, sizes, versions)."""
        return {}


def format_prompts(templates: Sequence[str], classname: str) -> list[str]:
    """Fill each template ('a photo of a {}.') with a class name."""
    return [t.format(classname) for t in templates]
