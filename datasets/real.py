"""Shared machinery of the real benchmark loaders: where data lives, the one error a missing dataset gives,
folder scanning, seeded splits, k-shot sampling, and `FileSource` (a DatasetSource over lists of image files).

Roots: a loader's `root` is the data root that holds every dataset's folder (the reference code's
`--data-location`). Without one it is BENCH_DATA (`--data-root` sets it); suites therefore name no paths.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from bench.datasets.base import DatasetSource
from bench.datasets.fingerprint import dir_tree
from bench.hashing import digest
from bench.datasets.images import IMAGE_SUFFIXES, ImageListDataset
from bench.errors import BenchError

Sample = tuple[Path, int]


@dataclass(frozen=True)
class DataInfo:
    """What `bench data check` and the missing-data error tell a user about one dataset."""
    title: str
    dirname: str                      # folder under the data root
    layout: str                       # the expected tree, one line per entry
    obtain: str                       # where the data is obtained
    expected: dict = field(default_factory=dict)   # split -> number of images in the full dataset
    n_classes: int = 0


def data_root(root=None) -> Path:
    """The data root: `root` if given, else BENCH_DATA; never a silent default such as the working directory."""
    if root is None or str(root) == "":
        env = os.environ.get("BENCH_DATA")
        if not env:
            raise BenchError("No data root: set BENCH_DATA (or pass --data-root DIR) to the folder that holds the "
                             "datasets, e.g. $BENCH_DATA/ILSVRC2012, $BENCH_DATA/iwildcam_v2.0. "
                             "`bench data check --suite S` lists what each suite needs.")
        root = env
    return Path(root).expanduser().resolve()


def missing(name: str, info: DataInfo, path: Path, detail: str = "") -> BenchError:
    """The one error for absent or malformed data: dataset, path searched, expected layout, where to get it."""
    layout = "\n".join(f"    {line}" for line in info.layout.strip().splitlines())
    what = detail or "not found"
    return BenchError(f"Dataset '{name}' ({info.title}): {what}.\n  Looked in: {path}\n  Expected layout under the "
                      f"data root (BENCH_DATA or --data-root):\n{layout}\n  Obtain it from: {info.obtain}\n"
                      "  Nothing is downloaded automatically.")


def image_names(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES)


def subdirs(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


def scan(split_dir: Path, label_of: dict[str, int], unknown: str = "error", skip=()) -> list[Sample]:
    """(path, label) of every image in split_dir/<folder>/, labels by folder name. Absent folders are allowed
    (`bench data check` reports them); an unknown folder is an error unless unknown='ignore' (ObjectNet);
    folders in `skip` are passed over (Caltech101's BACKGROUND_Google)."""
    found = [f for f in subdirs(split_dir) if f not in skip]
    stray = [f for f in found if f not in label_of]
    if stray and unknown == "error":
        raise BenchError(f"{split_dir} holds folders that are not classes of this dataset: {stray[:5]}"
                         f"{' ...' if len(stray) > 5 else ''}. Point the data root at an unmodified copy.")
    samples = []
    for folder in found:
        if folder in label_of:
            samples += [(split_dir / folder / n, label_of[folder]) for n in image_names(split_dir / folder)]
    return samples


def stratified_split(samples: list[Sample], fractions: dict[str, float], seed: int) -> dict[str, list[Sample]]:
    """Seeded per-class split. Every split but the first takes round(n * fraction) of each class, at least one
    while the first keeps one; the first takes the rest. Sample order inside a split follows the input order."""
    names = list(fractions)
    out: dict[str, list[Sample]] = {n: [] for n in names}
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for i, (_, y) in enumerate(samples):
        by_class.setdefault(y, []).append(i)
    assign = {}
    for y in sorted(by_class):
        idx = by_class[y]
        order = rng.permutation(len(idx))
        start = 0
        for name in names[1:]:
            n = max(0, min(max(1, int(round(len(idx) * fractions[name]))), len(idx) - start - 1))
            for j in order[start:start + n]:
                assign[idx[j]] = name
            start += n
        for j in order[start:]:
            assign[idx[j]] = names[0]
    for i, s in enumerate(samples):
        out[assign[i]].append(s)
    return out


def k_per_class(samples: list[Sample], k: int, seed) -> list[Sample]:
    """k samples of each class (all of a class with fewer), drawn with a seeded generator."""
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for i, (_, y) in enumerate(samples):
        by_class.setdefault(y, []).append(i)
    keep = []
    for y in sorted(by_class):
        idx = by_class[y]
        keep += [idx[j] for j in rng.permutation(len(idx))[:k]]
    return [samples[i] for i in sorted(keep)]


class FileSource(DatasetSource):
    """A dataset whose splits are lists of image files. Subclasses set `info`, `splits`, class names and
    templates, and implement `_scan(split)`. Options shared by all: few-shot sampling of the training split
    and of the validation split (`shots`: k images per class in each, `shot_seed`), the paper's protocol of a
    validation set the same size as the training set."""
    info: DataInfo
    splits: tuple[str, ...] = ()
    val_split = "val"                 # the split that few-shot sampling shrinks along with `train`

    def __init__(self, root=None, shots: int | None = None, shot_seed: int = 0):
        super().__init__()
        self.data_root = data_root(root)
        self.dir = self.data_root / self.info.dirname
        if shots is not None and int(shots) < 1:
            raise BenchError(f"Dataset '{self.name}': shots must be a positive number of images per class, got {shots}.")
        self.shots, self.shot_seed = (int(shots) if shots is not None else None), int(shot_seed)
        self._cache: dict[str, list[Sample]] = {}   # split -> samples after few-shot sampling
        self._scans: dict[str, list[Sample]] = {}   # split -> every image of the split

    def find_dir(self, names) -> Path:
        """The first of `names` (alternative folder names of the same data) under the data root."""
        for name in names:
            if (self.data_root / name).is_dir():
                return self.data_root / name
        raise self.fail()

    def fail(self, detail: str = "", path: Path | None = None) -> BenchError:
        return missing(self.name, self.info, path or self.dir, detail)

    def split_names(self) -> list[str]:
        return list(self.splits)

    def _scan(self, split: str) -> list[Sample]:
        raise NotImplementedError

    def samples(self, split: str) -> list[Sample]:
        if split not in self._cache:
            items = self._scan_cached(split)
            if self.shots is not None and split in ("train", self.val_split):
                # Independent streams for the two draws: (shot_seed, 0) for train, (shot_seed, 1) for val.
                items = k_per_class(items, self.shots, [self.shot_seed, int(split != "train")])
            self._cache[split] = items
        return self._cache[split]

    def _build_split(self, split: str, transform: Callable | None):
        items = self.samples(split)
        if not items:
            raise self.fail(f"split '{split}' has no images")
        return ImageListDataset(items, transform)

    def problems(self) -> list[str]:
        """Layout problems beyond image counts, for `bench data check` (e.g. class folders that are absent)."""
        return []

    def validate(self, splits) -> None:
        """k-shot needs k images of every class in train and the validation split (fewer would make the
        draw silently unbalanced). Scans those splits now; the scan is cached for the jobs."""
        super().validate(splits)
        if self.shots is None:
            return
        for split in [s for s in ("train", self.val_split) if s in splits]:
            counts = np.bincount([y for _, y in self._scan_cached(split)], minlength=len(self.classnames))
            small = int(counts.argmin())
            if counts[small] < self.shots:
                raise BenchError(f"Dataset '{self.name}': shots={self.shots} but class '{self.classnames[small]}' has "
                                 f"only {counts[small]} image(s) in split '{split}' (smallest class). Use "
                                 f"shots <= {counts[small]} in the task's dataset options, or complete the data.")

    def _scan_cached(self, split: str) -> list[Sample]:
        if split not in self._scans:
            self._scans[split] = self._scan(split)
        return self._scans[split]

    def fingerprint(self) -> str:
        """The dataset's folder layout (directories by mtime, see bench.datasets.fingerprint.dir_tree) and its
        loader's identity; a full stat of every image would cost seconds to minutes on each run."""
        return digest(self.name, self.info.title, dir_tree(self.dir, depth=2))

    def details(self) -> dict:
        out = {"root": str(self.dir)}
        if self.shots is not None:
            out.update(shots=self.shots, shot_seed=self.shot_seed,
                       few_shot=f"{self.shots} per class in train and {self.val_split}, seed {self.shot_seed}")
        return out
