"""Reduced-size JPEG decoding: close to a full decode after the model's resize, and a no-op where it cannot help."""
import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from bench.datasets.images import ImageListDataset, decode_size, load_rgb


def photo(path, w, h, fmt="JPEG"):
    """A smooth image with some detail (gradients and rings), saved at high quality."""
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    rgb = np.stack([xx, yy, 0.5 + 0.5 * np.sin(40 * np.hypot(xx - 0.5, yy - 0.5))], -1)
    Image.fromarray((rgb * 255).astype(np.uint8)).save(path, fmt, quality=95)
    return path


EVAL = T.Compose([T.Resize(64, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(64), T.ToTensor()])


def test_large_jpeg_is_decoded_small_and_transforms_to_nearly_the_same_tensor(tmp_path):
    path = photo(tmp_path / "big.jpg", 1024, 768)
    assert decode_size(EVAL) == 64
    reduced = load_rgb(path, 64)
    assert reduced.size == (128, 96)  # 1/8 scale: the largest that keeps both sides >= 64
    full = EVAL(load_rgb(path))
    fast = ImageListDataset([(path, 0)], EVAL)[0][0]
    assert fast.shape == full.shape == (3, 64, 64)
    assert (fast - full).abs().mean() < 0.01


def test_small_jpegs_and_other_formats_are_untouched(tmp_path):
    small = photo(tmp_path / "small.jpg", 100, 90)
    png = photo(tmp_path / "big.png", 1024, 768, fmt="PNG")
    for path in (small, png):
        assert torch.equal(ImageListDataset([(path, 0)], EVAL)[0][0], EVAL(load_rgb(path)))
    assert load_rgb(png, 64).size == (1024, 768)


def test_random_resized_crops_keep_enough_pixels_and_unknown_pipelines_decode_in_full():
    rrc = T.Compose([T.RandomResizedCrop(224, scale=(0.9, 1.0), ratio=(0.75, 4 / 3)), T.ToTensor()])
    assert decode_size(rrc) == int(np.ceil(224 / np.sqrt(0.9 * 0.75)))
    assert decode_size(T.Compose([T.ToTensor(), T.Resize((32, 48))])) == 48
    assert decode_size(T.Compose([T.ColorJitter(), T.Resize(32)])) is None
    assert decode_size(T.Resize(32, max_size=40)) is None
    assert ImageListDataset([], None).min_size is None
    assert ImageListDataset([], EVAL, reduced_decode=False).min_size is None


def test_open_clip_transforms_are_understood():
    from bench.model.factory import load_model

    m = load_model("bench-tiny", None)
    assert decode_size(m.eval_transform) == 32
    assert decode_size(m.train_transform) == int(np.ceil(32 / np.sqrt(0.9 * 0.75)))
