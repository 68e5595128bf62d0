"""Tiny generated datasets in real layouts, for tests and for trying the pipeline without data.

`make_folder_tree` writes an ImageFolder tree whose classes are learnable (each class has its own colour
and stripe orientation) with an `ood` split in which the colours are inverted.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSNAMES = ["red circle", "green square", "blue triangle", "yellow star", "purple cross", "orange ring"]


def _image(label: int, rng: np.random.Generator, size: int, ood: bool) -> Image.Image:
    hue = np.array([[220, 40, 40], [40, 200, 60], [40, 60, 220], [230, 220, 40], [150, 40, 170], [240, 140, 30]])[label]
    if ood:
        hue = 255 - hue
    yy, xx = np.mgrid[0:size, 0:size]
    angle = np.pi * label / 6
    stripes = (np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * 0.8) > 0)[..., None]
    img = np.where(stripes, hue, hue * 0.4) + rng.normal(0, 12, (size, size, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def make_folder_tree(root: str | Path, n_classes: int = 4, per_split: dict | None = None, size: int = 32,
                     seed: int = 0, with_text_files: bool = True) -> Path:
    root = Path(root)
    per_split = per_split or {"train": 12, "val": 4, "test": 4, "ood": 4}
    rng = np.random.default_rng(seed)
    folders = [f"class_{i:02d}" for i in range(n_classes)]
    for split, n in per_split.items():
        for label, folder in enumerate(folders):
            d = root / split / folder
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                _image(label, rng, size, split.startswith("ood")).save(d / f"{i:04d}.png")
    if with_text_files:
        (root / "classnames.txt").write_text("\n".join(CLASSNAMES[:n_classes]) + "\n")
        (root / "templates.txt").write_text("a photo of a {}.\na picture of a {}.\nan image of a {}.\n")
    return root
