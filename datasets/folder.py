"""A generic ImageFolder-style dataset any user can point at their own data.

Layout:
    <root>/<split>/<class_folder>/<image>     splits such as train, val, test, and any OOD split
    <root>/classnames.txt   optional: one readable class name per line, in sorted class-folder order
    <root>/templates.txt    optional: one prompt template per line, with {} for the class name
Without classnames.txt the folder names are used (underscores become spaces). Without a `val` split,
a seeded, stratified 10% of `train` (at least one image of each class) is held out as `val` (recorded by
describe()). Before any job (`validate`): at least 2 classes, every class with images in every split the
task uses, and every image's header readable (PIL opens it; above HEADER_CHECK_MAX files a seeded sample,
which the log says). The fingerprint covers every file's size and modification time plus the two text files.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from bench.datasets.base import DatasetSource, check_templates
from bench.datasets.fingerprint import file_tree
from bench.hashing import digest
from bench.datasets.images import ImageListDataset, list_images
from bench.errors import BenchError

LAYOUT = "<root>/<split>/<class>/<image> with splits such as train, val, test (optional classnames.txt, templates.txt)"
HEADER_CHECK_MAX = 100_000  # files whose headers are all read; above it, a seeded sample of this many
log = logging.getLogger(__name__)


class FolderDataset(DatasetSource):
    name = "folder"

    def __init__(self, root: str | Path, val_fraction: float = 0.1, split_seed: int = 0):
        super().__init__()
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise BenchError(f"Folder dataset not found: looked for the directory {self.root}. Expected layout: {LAYOUT}.")
        self._splits = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if "train" not in self._splits:
            raise BenchError(f"Folder dataset {self.root} has no 'train' split (found: {self._splits or 'nothing'}). "
                             f"Expected layout: {LAYOUT}.")
        self.class_folders = sorted(p.name for p in (self.root / "train").iterdir() if p.is_dir())
        if not self.class_folders:
            raise BenchError(f"{self.root / 'train'} has no class folders. Expected layout: {LAYOUT}.")
        self.classnames = self._read_classnames()
        tpl = self.root / "templates.txt"
        if tpl.is_file():
            self.templates = check_templates([t.strip() for t in tpl.read_text().splitlines() if t.strip()], str(tpl))
        if not 0 < val_fraction < 1:
            raise BenchError(f"Folder dataset {self.root}: val_fraction must be in (0, 1), got {val_fraction}.")
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self._holdout: tuple[tuple, dict[str, list]] | None = None  # (train listing it was carved from, split)

    def _read_classnames(self) -> list[str]:
        path = self.root / "classnames.txt"
        if not path.is_file():
            return [c.replace("_", " ") for c in self.class_folders]
        names = [n.strip() for n in path.read_text().splitlines() if n.strip()]
        if len(names) != len(self.class_folders):
            raise BenchError(f"{path} lists {len(names)} names but {self.root / 'train'} has "
                             f"{len(self.class_folders)} class folders; give one name per folder, in sorted folder order.")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:  # two classes with one prompt cannot be told apart by a zero-shot or FLYP head
            raise BenchError(f"{path} lists the class name {twice[0]!r} more than once; give each class its own name.")
        return names

    def split_names(self) -> list[str]:
        return sorted(set(self._splits) | {"val"})

    def _samples(self, split: str) -> list[tuple[Path, int]]:
        if split in ("train", "val") and "val" not in self._splits:
            return self._carve_val()[split]
        return list_images(self.root / split, self.class_folders)

    def _carve_val(self) -> dict[str, list]:
        """Seeded, stratified hold-out of `val_fraction` of each training class, at least one image of each
        class with two or more (so validation sees every class); recarved when the training files change."""
        samples = list_images(self.root / "train", self.class_folders)
        if self._holdout is None or self._holdout[0] != tuple(samples):
            rng = np.random.default_rng(self.split_seed)
            out = {"train": [], "val": []}
            for c in range(len(self.class_folders)):
                items = [s for s in samples if s[1] == c]
                order = rng.permutation(len(items))
                n_val = max(1, int(round(len(items) * self.val_fraction))) if len(items) > 1 else 0
                out["val"] += [items[i] for i in sorted(order[:n_val])]
                out["train"] += [items[i] for i in sorted(order[n_val:])]
            self._holdout = (tuple(samples), out)
        return self._holdout[1]

    def validate(self, splits) -> None:
        """Every class has images in every split the task uses: an empty class or one missing from a split
        would train without it or score a class that cannot be predicted, silently."""
        super().validate(splits)
        if len(self.class_folders) < 2:
            raise BenchError(f"Folder dataset {self.root}: {self.root / 'train'} has {len(self.class_folders)} class "
                             f"folder ({self.class_folders[0]!r}); classification needs at least 2. Add a folder per "
                             f"class. Expected layout: {LAYOUT}.")
        for split in splits:
            counts = np.bincount([y for _, y in self._samples(split)], minlength=len(self.class_folders))
            empty = [self.class_folders[c] for c in np.flatnonzero(counts == 0)]
            if not empty:
                continue
            if split == "val" and "val" not in self._splits:
                raise BenchError(f"Folder dataset {self.root}: class folder(s) {empty[:5]} under train/ have fewer "
                                 "than 2 images, too few to hold one out for validation. Add images to them, remove "
                                 "them from every split, or add a val/ split with every class.")
            raise BenchError(f"Folder dataset {self.root}: split '{split}' has no images of class folder(s) "
                             f"{empty[:5]}{' ...' if len(empty) > 5 else ''} (expected {self.root / split}/<class>/"
                             "<image> for every class of train/). Add images there, or remove the class from every split.")

        self.check_images(splits)

    def check_images(self, splits) -> None:
        """Every image of `splits` opens in PIL (its header: cheap), so an undecodable file fails now, not in
        the middle of a job; above HEADER_CHECK_MAX files, a seeded sample of that many."""
        from PIL import Image, UnidentifiedImageError

        paths = sorted({p for split in splits for p, _ in self._samples(split)})
        if len(paths) > HEADER_CHECK_MAX:
            order = np.random.default_rng(0).permutation(len(paths))[:HEADER_CHECK_MAX]
            log.warning("Folder dataset %s: %d images; checked the headers of a sample of %d", self.root, len(paths),
                        HEADER_CHECK_MAX)
            paths = [paths[i] for i in sorted(order)]
        bad = []
        for path in paths:
            try:
                with Image.open(path) as img:
                    img.size  # noqa: B018 (the header is parsed on open; size proves it has one)
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                bad.append(f"{path.relative_to(self.root)} ({type(exc).__name__})")
        if bad:
            raise BenchError(f"Folder dataset {self.root}: {len(bad)} file(s) that are not readable images: "
                             f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}. Replace or remove them.")

    def _build_split(self, split, transform):
        return ImageListDataset(self._samples(split), transform)

    def details(self) -> dict:
        carved = "val" not in self._splits
        return {"root": str(self.root), "splits": self._splits,
                "val": f"seeded {self.val_fraction:.0%} of train, seed {self.split_seed}" if carved else "val folder"}

    def fingerprint(self) -> str:
        """Every file of every split (path, size, mtime) and the text files: a changed image invalidates caches."""
        return digest(self.name, file_tree(self.root, [*self._splits, "classnames.txt", "templates.txt"]))
