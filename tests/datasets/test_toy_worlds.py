"""Toy split generators and their DatasetSources: sizes, the spurious cue, cameras, the torch Dataset."""
from collections import Counter

import numpy as np
import pytest
import torch
from torchvision import transforms

from bench.datasets.toy import worlds
from bench.datasets.toy.source import ToyCameras, ToyShift
from bench.errors import BenchError


def test_shift_split_sizes_and_balance():
    for split, n in worlds.SHIFT_SIZES.items():
        items = worlds.shift_split(split)
        assert len(items) == n
        counts = Counter(y for _, y in items)
        assert max(counts.values()) - min(counts.values()) <= 1  # class-balanced
    assert len(worlds.shift_split("train", 50)) == 50


def test_shift_splits_are_deterministic_and_independent():
    a = worlds.shift_split("id_val", 40, seed=0)
    assert a == worlds.shift_split("id_val", 40, seed=0)
    assert a != worlds.shift_split("id_val", 40, seed=1)
    # resizing one split never changes another: a source with id_val and train resized has the default v2
    resized = ToyShift(sizes={"id_val": 80, "train": 50})
    assert resized.sizes["id_val"] == 80 and resized._items("v2") == ToyShift()._items("v2")
    assert len(resized._items("id_val")) == 80
    assert {s.seed for s, _ in a}.isdisjoint({s.seed for s, _ in worlds.shift_split("id_test", 40)})


def _home_rates(items, homes):
    return (np.mean([s.colour == homes[y][0] for s, y in items]),
            np.mean([s.background == homes[y][1] for s, y in items]))


def test_shift_train_has_the_spurious_cue_and_v2_does_not():
    homes = worlds.shift_homes(0)
    assert len(set(homes)) == len(homes)  # every class has its own (colour, background) pair
    colour, bg = _home_rates(worlds.shift_split("train"), homes)
    assert 0.86 < colour < 0.95 and 0.86 < bg < 0.95
    colour, bg = _home_rates(worlds.shift_split("v2"), homes)
    assert colour < 0.25 and bg < 0.3


def test_shift_ood_styles():
    assert {s.style for s, _ in worlds.shift_split("train", 100)} == {"photo"}
    assert {s.style for s, _ in worlds.shift_split("sketch", 100)} == {"sketch"}
    assert {s.style for s, _ in worlds.shift_split("rendition", 100)} == {"painting", "cartoon"}
    adv = worlds.shift_split("adversarial", 100)
    assert all(s.clutter >= 2 and s.occlusion > 0 for s, _ in adv)


def test_cameras_ood_are_unseen_and_classes_long_tailed():
    cams = {split: {worlds.camera_of(s) for s, _ in worlds.camera_split(split)} for split in worlds.CAMERA_SPLITS}
    train = cams["train"]
    assert cams["id_val"] <= train and cams["id_test"] <= train
    assert train.isdisjoint(cams["ood_val"]) and train.isdisjoint(cams["ood_test"])
    assert cams["ood_val"].isdisjoint(cams["ood_test"])
    counts = sorted(Counter(y for _, y in worlds.camera_split("train")).values(), reverse=True)
    assert len(counts) == 12  # every class is seen in training
    assert counts[0] >= 10 * counts[-1]  # long tail
    assert sum(counts[:3]) > 0.5 * sum(counts)
    for split, n in worlds.CAMERA_SIZES.items():
        assert len(worlds.camera_split(split)) == n


def test_a_camera_keeps_its_background_and_lighting():
    by_cam = {}
    for s, _ in worlds.camera_split("train", 200):
        by_cam.setdefault(s.background_seed, set()).add((s.background, s.brightness, s.tint, s.light_angle))
    assert all(len(v) == 1 for v in by_cam.values())


@pytest.mark.parametrize("cls", [ToyShift, ToyCameras])
def test_source_yields_tensor_and_int(cls):
    src = cls(seed=0, size=32, sizes={"train": 24})
    assert len(src.classnames) == 12 and src.templates
    assert src.split_names()[0] == "train"
    ds = src.split("train", transforms.ToTensor())
    assert len(ds) == 24
    x, y = ds[3]
    assert isinstance(x, torch.Tensor) and x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert isinstance(y, int) and 0 <= y < 12
    assert torch.equal(ds[3][0], x)  # cached and deterministic
    img, _ = src.split("train")[3]
    assert img.mode == "RGB" and img.size == (32, 32)
    d = src.describe()
    assert d["seed"] == 0 and d["sizes"]["train"] == 24


def test_source_errors_are_clear():
    with pytest.raises(BenchError, match="Valid"):
        ToyShift().split("imagenet-r")
    with pytest.raises(BenchError, match="sketchh"):
        ToyShift(sizes={"sketchh": 10})
