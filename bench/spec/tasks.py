"""Turn a task definition (from a suite) into datasets: the training split and the evaluation sets."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.config import data_root
from bench.datasets import DATASETS
from bench.datasets.base import DatasetSource
from bench.errors import unknown_name

_SOURCES: dict[str, DatasetSource] = {}


def dataset_source(spec: dict) -> DatasetSource:
    """Build (once per process) the DatasetSource a spec {name, **options} names."""
    key = repr((sorted(spec.items()), str(data_root())))  # BENCH_DATA may change within a process (tests, notebooks)
    if key not in _SOURCES:
        options = {k: v for k, v in spec.items() if k != "name"}
        if "root" in options:
            root = Path(str(options["root"])).expanduser()
            if not root.is_absolute() and data_root() is not None:
                root = data_root() / root
            options["root"] = root
        cls = DATASETS.get(spec["name"])
        _check_options(cls, spec["name"], options)
        _SOURCES[key] = cls(**options)
    return _SOURCES[key]


def _check_options(cls, name: str, options: dict) -> None:
    """Loader options of a suite's `dataset:` entry must be parameters of that loader."""
    import inspect

    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in options:
        if key not in accepted:
            raise unknown_name(f"option of dataset '{name}'", key, accepted)


@dataclass
class EvalSet:
    role: str          # val | id | ood
    name: str
    source: DatasetSource
    split: str
    metric: str

    @property
    def key(self) -> str:
        return f"val/{self.metric}" if self.role == "val" else f"{self.role}/{self.name}/{self.metric}"


@dataclass
class Task:
    name: str
    source: DatasetSource
    train_split: str
    sets: list[EvalSet]
    prompt_templates: list[str] | None = None   # the task's own `templates`, else the dataset's

    @property
    def classnames(self) -> list[str]:
        return self.source.classnames

    @property
    def templates(self) -> list[str]:
        return self.prompt_templates or self.source.templates

    @property
    def val(self) -> EvalSet:
        return next(s for s in self.sets if s.role == "val")


def with_shot_seed(dataset: dict, seed: int | None) -> dict:
    """k-shot datasets draw a different sample per job seed unless the suite fixes `shot_seed`."""
    if seed is not None and "shots" in dataset and "shot_seed" not in dataset:
        return {**dataset, "shot_seed": seed}
    return dataset


def build_task(name: str, spec: dict, seed: int | None = None) -> Task:
    spec = {**spec, "dataset": with_shot_seed(spec["dataset"], seed),
            "val": {**spec["val"], "dataset": with_shot_seed(spec["val"]["dataset"], seed)},
            **{role: [{**e, "dataset": with_shot_seed(e["dataset"], seed)} for e in spec[role]] for role in ("id", "ood")}}
    source = dataset_source(spec["dataset"])
    if spec["train"] not in source.split_names():
        source.split(spec["train"])  # raises the unknown-split error listing valid names
    sets = [EvalSet("val", "val", dataset_source(spec["val"]["dataset"]), spec["val"]["split"], spec["val"]["metric"])]
    for role in ("id", "ood"):
        for e in spec[role]:
            sets.append(EvalSet(role, e["name"], dataset_source(e["dataset"]), e["split"], e["metric"]))
    for s in sets:
        if s.split not in s.source.split_names():
            s.source.split(s.split)  # raises the unknown-split error listing valid names
    used: dict[int, tuple[DatasetSource, list[str]]] = {id(source): (source, [spec["train"]])}
    for s in sets:
        used.setdefault(id(s.source), (s.source, []))[1].append(s.split)
    for src, splits in used.values():
        src.validate(list(dict.fromkeys(splits)))  # empty classes, k-shot larger than a class, templates
    return Task(name, source, spec["train"], sets, spec.get("templates"))
