"""Image files as a torch Dataset: RGB conversion, and one clear error naming a file that will not load."""
from __future__ import annotations

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


def load_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")  # grayscale, CMYK, palette and RGBA all become RGB
    except (UnidentifiedImageError, OSError) as exc:
        raise BenchError(f"Cannot read image {path}: {exc}. Replace or remove the file.") from exc


class ImageListDataset(Dataset):
    def __init__(self, samples: list[tuple[Path, int]], transform=None):
        self.samples = samples
        self.targets = [y for _, y in samples]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        img = load_rgb(path)
        return (self.transform(img) if self.transform else img), label
