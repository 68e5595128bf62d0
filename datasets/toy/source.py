"""The toy world's datasets, `toy-shift` and `toy-cameras`, behind the DatasetSource contract."""
from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from bench.errors import BenchError

from ..base import DatasetSource
from bench.hashing import digest
from . import worlds
from .render import Scene, render
from .vocab import CLASSNAMES

TOY_WORLD_VERSION = 1  # bump when a change to the renderer or the splits changes any image

# Every template is a sentence of the caption grammar (tests check it), so the pretrained toy model reads them.
TEMPLATES = ["a photo of a {}.", "a photograph of a {}.", "an image of a {}.", "a picture of a {}.", "a {}.",
             "a sketch of a {}.", "a drawing of a {}.", "a painting of a {}.", "a cartoon {}.",
             "a cartoon of a {}."]
PHOTO_TEMPLATES = TEMPLATES[:5]


class SceneDataset(Dataset):
    """Map-style dataset of rendered scenes: yields (transform(img) or PIL img, label).

    Images are rendered on first access and kept as uint8 arrays (64 px: 12 KB each); each DataLoader
    worker keeps its own cache.
    """

    def __init__(self, items: list[tuple[Scene, int]], size: int = 64, transform: Callable | None = None,
                 cache: bool | dict = True):
        self.scenes = [s for s, _ in items]
        self.labels = [int(y) for _, y in items]
        self.size, self.transform = size, transform
        # A dict passed in is shared: the source keeps one store per split, so the train and eval views
        # of a split, and every job of a run, render each image once.
        self._cache: dict[int, np.ndarray] | None = cache if isinstance(cache, dict) else ({} if cache else None)

    @property
    def targets(self) -> list[int]:  # torchvision's name for the labels
        return self.labels

    def __len__(self) -> int:
        return len(self.scenes)

    def image(self, i: int) -> Image.Image:
        if self._cache is None:
            return render(self.scenes[i], self.size)
        if i not in self._cache:
            self._cache[i] = np.asarray(render(self.scenes[i], self.size))
        return Image.fromarray(self._cache[i])

    def __getitem__(self, i: int):
        img = self.image(i)
        return (self.transform(img) if self.transform else img), self.labels[i]


class _ToySource(DatasetSource):
    splits: tuple[str, ...] = ()
    default_sizes: dict[str, int] = {}
    metric = "accuracy"

    def __init__(self, seed: int = 0, size: int = 64, sizes: dict[str, int] | None = None, cache: bool = True):
        super().__init__()
        bad = [k for k in (sizes or {}) if k not in self.splits]
        if bad:
            raise BenchError(f"Unknown split '{bad[0]}' in sizes for dataset '{self.name}'. "
                             f"Valid splits: {', '.join(self.splits)}.")
        if size < 8:
            raise BenchError(f"Toy image size must be at least 8 px, got {size}.")
        self.seed, self.size, self.cache = int(seed), int(size), cache
        self._stores: dict[str, dict[int, np.ndarray]] = {}
        self.sizes = {**self.default_sizes, **(sizes or {})}
        self.classnames = list(CLASSNAMES)
        self.templates = list(TEMPLATES)

    def split_names(self) -> list[str]:
        return list(self.splits)

    def _items(self, split: str) -> list[tuple[Scene, int]]:
        raise NotImplementedError

    def _build_split(self, split: str, transform: Callable | None):
        store = self._stores.setdefault(split, {}) if self.cache else False
        return SceneDataset(self._items(split), self.size, transform, store)

    def details(self) -> dict:
        return {"seed": self.seed, "size": self.size, "sizes": dict(self.sizes),
                "toy_world_version": TOY_WORLD_VERSION}

    def fingerprint(self) -> str:
        """Rendered, not read: the generation parameters and the world's version determine every image."""
        return digest(self.name, TOY_WORLD_VERSION, self.seed, self.size, sorted(self.sizes.items()))


class ToyShift(_ToySource):
    """ImageNet analogue: train/ID on photos with spurious colour+background cues; OOD v2, sketch,
    rendition (painting + cartoon) and adversarial (clutter, occlusion, misleading cues)."""
    name = "toy-shift"
    splits = worlds.SHIFT_SPLITS
    default_sizes = worlds.SHIFT_SIZES

    def _items(self, split):
        return worlds.shift_split(split, self.sizes[split], self.seed)


class ToyCameras(_ToySource):
    """iWildCam analogue: camera traps with fixed backgrounds and lighting, long-tailed classes;
    ood_val/ood_test come from unseen cameras. Score with macro-F1."""
    name = "toy-cameras"
    splits = worlds.CAMERA_SPLITS
    default_sizes = worlds.CAMERA_SIZES
    metric = "macro_f1"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.templates = list(PHOTO_TEMPLATES)

    def _items(self, split):
        return worlds.camera_split(split, self.sizes[split], self.seed)

    def details(self) -> dict:
        return {**super().details(), "cameras": {k: list(v) for k, v in worlds.CAMERA_GROUPS.items()}}
