"""A small generated dataset of a domain the toy world never shows: printed digits.

`make_digit_tree` writes an ImageFolder tree (train, val, test and two OOD copies of test) of the digits 0-9
drawn with Pillow's bundled font (so every machine draws the same glyphs) at a random size, position,
rotation and ink/paper colour over a noisy paper texture. The toy world renders objects, colours and
styles, and its model never saw a glyph or the words "digit", "zero", ..., "nine": zero-shot is near chance
(10%) and only a training that moves the model learns the task. OOD splits: `ood_inverted` (the test images
with their colours inverted) and `ood_blurred` (the test images blurred and re-noised).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _digit(label: int, rng: np.random.Generator, size: int) -> Image.Image:
    big = size * 2  # drawn at twice the size, then reduced: smooth edges
    paper = rng.integers(150, 256, 3)
    ink = np.clip(paper - rng.integers(90, 150), 0, 255) if rng.random() < 0.5 else rng.integers(0, 90, 3)
    base = paper + rng.normal(0, 14, (big, big, 3))
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    glyph = Image.new("L", (big, big), 0)
    font = ImageFont.load_default(size=int(big * rng.uniform(0.55, 0.8)))
    draw = ImageDraw.Draw(glyph)
    x0, y0, x1, y1 = draw.textbbox((0, 0), str(label), font=font)
    cx, cy = big / 2 + rng.uniform(-0.12, 0.12) * big, big / 2 + rng.uniform(-0.12, 0.12) * big
    draw.text((cx - (x0 + x1) / 2, cy - (y0 + y1) / 2), str(label), font=font, fill=255)
    glyph = glyph.rotate(rng.uniform(-20, 20), resample=Image.BILINEAR)
    img.paste(Image.new("RGB", (big, big), tuple(int(c) for c in ink)), (0, 0), glyph)
    return img.resize((size, size), Image.BILINEAR)


def _shifted(img: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    if kind == "ood_inverted":
        return Image.fromarray(255 - np.asarray(img))
    blurred = np.asarray(img.filter(ImageFilter.GaussianBlur(1.0)), dtype=np.float32)
    return Image.fromarray(np.clip(blurred + rng.normal(0, 20, blurred.shape), 0, 255).astype(np.uint8))


def make_digit_tree(root: str | Path, per_class: dict | None = None, size: int = 32, seed: int = 0,
                    n_classes: int = 10) -> Path:
    """root/{train,val,test,ood_inverted,ood_blurred}/<digit name>/NNNN.png plus classnames.txt and templates.txt,
    for the digits 0 to n_classes - 1."""
    root = Path(root)
    per_class = per_class or {"train": 30, "val": 10, "test": 10}
    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for label, name in enumerate(NAMES[:n_classes]):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = _digit(label, rng, size)
                img.save(d / f"{i:04d}.png")
                if split == "test":
                    for kind in ("ood_inverted", "ood_blurred"):
                        (root / kind / name).mkdir(parents=True, exist_ok=True)
                        _shifted(img, kind, rng).save(root / kind / name / f"{i:04d}.png")
    (root / "classnames.txt").write_text("\n".join(f"digit {n}" for n in NAMES[:n_classes]) + "\n")
    (root / "templates.txt").write_text("a photo of the {}.\na printed {}.\nthe number {}.\n")
    return root
