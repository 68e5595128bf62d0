"""The dataset contract shared by every loader (folder trees, toy world, real benchmarks).

A `DatasetSource` knows its class names, prompt templates and splits. `split(name, transform)`
returns a torch Dataset yielding `(image_tensor, label)` or `(image_tensor, label, metadata)`; images
are PIL RGB before `transform`.
Loaders never download: a missing dataset raises `BenchError` naming the path and expected layout.
Every source has a `fingerprint()` of its data, recorded by `describe()` (so in MLflow params as
`data.fingerprint` and in feature-cache keys): changed data never meets a stale cache or a silent comparison.
"""
from __future__ import annotations

from typing import Callable, Sequence

from bench.errors import BenchError, unknown_name

DEFAULT_TEMPLATES = ["a photo of a {}."]


class DatasetSource:
    name: str = "dataset"

    def __init__(self) -> None:
        self.classnames: list[str] = []
        self.templates: list[str] = list(DEFAULT_TEMPLATES)

    # Subclasses override these three.
    def split_names(self) -> list[str]:
        raise NotImplementedError

    def _build_split(self, split: str, transform: Callable | None):
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A short hash that changes when the data changes (each loader documents what it covers)."""
        raise NotImplementedError

    def split(self, split: str, transform: Callable | None = None):
        if split not in self.split_names():
            raise unknown_name(f"split of dataset '{self.name}'", split, self.split_names())
        return self._build_split(split, transform)

    def validate(self, splits: Sequence[str]) -> None:
        """Checks run when a plan is built, before any job: raise BenchError for data a job would trip on.
        `splits` are the ones the task uses. Subclasses extend it (empty classes, k-shot larger than a class)."""
        check_templates(self.templates, f"Dataset '{self.name}' templates")

    def project_logits(self, logits):
        """Map full-head logits to this dataset's label space (identity unless a subset is scored)."""
        return logits

    def official_metrics(self, split: str, logits, labels, metadata) -> dict[str, float] | None:
        """Dataset-defined metrics (e.g. WILDS' own eval: F1-macro_all, acc_worst_region) on projected
        logits; a task's `metric` may name any key returned here. None: only bench.train.metrics apply."""
        return None

    def details(self) -> dict:
        """Facts recorded with a run (split seeds, sizes, versions); subclasses extend it."""
        return {}

    def describe(self) -> dict:
        return {**self.details(), "fingerprint": self.fingerprint()}


def check_templates(templates: Sequence[str], where: str) -> list[str]:
    """Each template holds the class-name placeholder exactly once ('{}', or '{article}' in FLYP's FMoW
    prompts) and no other brace, which str.format would misread or reject."""
    if not templates:
        raise BenchError(f"{where}: no templates; give at least one, such as 'a photo of a {{}}.'.")
    for t in templates:
        if not isinstance(t, str):
            raise BenchError(f"{where}: templates must be strings such as 'a photo of a {{}}.', got {t!r}.")
        holder = "{article}" if "{article}" in t else "{}"
        rest = t.replace(holder, "", 1)
        if holder not in t or "{" in rest or "}" in rest:
            raise BenchError(f"{where}: template {t!r} needs a '{{}}' for the class name, exactly once, and no other "
                             "braces (e.g. 'a photo of a {}.').")
    return list(templates)


def format_prompts(templates: Sequence[str], classname: str) -> list[str]:
    """Fill each template ('a photo of a {}.') with a class name."""
    return [t.format(classname) for t in templates]
