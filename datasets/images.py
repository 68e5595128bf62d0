"""Image files as a torch Dataset: RGB conversion, and one clear error naming a file that will not load."""
from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from bench.errors import BenchError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def list_images(split_dir: Path, class_folders: list[str]) -> list[tuple[Path, int]]:
    """(path, label) for every image under split_dir/<class>/, labels by position in class_folders."""
    if not split_dir.is_dir():
        raise BenchError(f"Split directory not found: {split_dir}")
    unknown = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and p.name not in class_folders)
    if unknown:
        raise BenchError(f"{split_dir} has class folders not in the training split: {unknown[:5]}.")
    samples = []
    for label, cls in enumerate(class_folders):
        folder = split_dir / cls
        if folder.is_dir():
            samples += [(p, label) for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not samples:
        raise BenchError(f"No images found under {split_dir} (expected {split_dir}/<class>/<image>).")
    return samples


def load_rgb(path: Path, min_size: int | None = None) -> Image.Image:
    """The image as RGB. With `min_size`, a JPEG is decoded at a reduced scale (1/2, 1/4 or 1/8, done by
    the decoder on the DCT blocks) that keeps both sides >= min_size: a 12 MP photo resized to 224 px then
    costs a fraction of a full decode. Other formats and small JPEGs decode in full."""
    try:
        with Image.open(path) as img:
            if min_size and img.format == "JPEG":
                img.draft("RGB", (min_size, min_size))
            return img.convert("RGB")  # grayscale, CMYK, palette and RGBA all become RGB
    except (UnidentifiedImageError, OSError) as exc:
        raise BenchError(f"Cannot read image {path}: {exc}. Replace or remove the file.") from exc


def decode_size(transform) -> int | None:
    """The smallest decoded side that loses nothing for `transform`: read from its first geometric step
    (Resize, CenterCrop, RandomResizedCrop); None (decode in full) when it starts otherwise."""
    from torchvision import transforms as T

    steps = getattr(transform, "transforms", [transform])
    for step in steps:
        if isinstance(step, T.RandomResizedCrop):
            # The smallest crop side, relative to the image side, is sqrt(min scale * most extreme ratio);
            # decode large enough that this crop still has `size` pixels.
            scale, ratio = min(step.scale), min(min(step.ratio), 1 / max(step.ratio))
            return math.ceil(max(step.size) / math.sqrt(scale * ratio))
        if isinstance(step, T.Resize):
            size = step.size
            if step.max_size is not None:  # a cap on the long side: a reduced decode could change the result
                return None
            return max(size) if isinstance(size, (list, tuple)) else int(size)
        if isinstance(step, T.CenterCrop):
            return max(step.size)
        if isinstance(step, (T.ToTensor, T.PILToTensor, T.Normalize)) or type(step).__name__.startswith("Maybe"):
            continue
        return None
    return None


class ImageListDataset(Dataset):
    def __init__(self, samples: list[tuple[Path, int]], transform=None, reduced_decode: bool = True):
        self.samples = samples
        self.targets = [y for _, y in samples]
        self.transform = transform
        self.min_size = decode_size(transform) if (transform is not None and reduced_decode) else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        img = load_rgb(path, self.min_size)
        return (self.transform(img) if self.transform else img), label
