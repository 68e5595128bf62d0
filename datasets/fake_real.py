"""Tiny fake copies of the real benchmarks, in exactly their real layouts, for tests and for trying the
pipeline without data (`bench data fake --suite S --root DIR`). The loaders read them through the same code
as real data (WILDS ones through wilds.get_dataset(download=False)).

Fakes are small: a few images in a few classes. Where the real tree has every class folder (ImageNet and its
shifts, Caltech101), all folders exist and most are empty, so a partial-copy check has something to report.
Images are small coloured noise with a per-class tint; `make_fake(name, root)` writes one dataset.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from bench.datasets.prompts import read_json, read_lines

WNIDS = read_lines("imagenet_wnids.txt")
# Classes with images: in ImageNet-R and ImageNet-A both, so every shift has images of them.
FAKE_CLASSES = (6, 11, 13, 22)


def image(label: int, seed: int, size: int = 24) -> Image.Image:
    rng = np.random.default_rng([label, seed])
    tint = np.array([(label * 67) % 256, (label * 151) % 256, (label * 29 + 90) % 256])
    arr = np.clip(tint * 0.7 + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def _save(path: Path, label: int, seed: int, size: int = 24) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image(label, seed, size).save(path)


def _folders(split_dir: Path, names, per_class: dict[str, int], labels: dict[str, int], suffix: str, seed: int):
    for name in names:
        (split_dir / name).mkdir(parents=True, exist_ok=True)
    for name, n in per_class.items():
        for i in range(n):
            _save(split_dir / name / f"{name}_{seed}_{i}{suffix}", labels[name], seed * 100 + i)


def fake_imagenet(root: Path, per_class: int = 3) -> None:
    wn = {WNIDS[c]: c for c in FAKE_CLASSES}
    _folders(root / "ILSVRC2012" / "train", WNIDS, {w: per_class for w in wn}, wn, ".JPEG", 1)
    _folders(root / "ILSVRC2012" / "val", WNIDS, {w: 2 for w in wn}, wn, ".JPEG", 2)


def fake_imagenetv2(root: Path) -> None:
    names = [str(i) for i in range(1000)]
    _folders(root / "ImageNetV2-matched-frequency", names, {str(c): 2 for c in FAKE_CLASSES},
             {str(c): c for c in FAKE_CLASSES}, ".jpeg", 3)


def fake_sketch(root: Path) -> None:
    wn = {WNIDS[c]: c for c in FAKE_CLASSES}
    _folders(root / "sketch", WNIDS, {w: 2 for w in wn}, wn, ".JPEG", 4)


def _fake_subset(root: Path, dirname: str, wnid_file: str, seed: int) -> None:
    subset = read_lines(wnid_file)
    wn = {WNIDS[c]: c for c in FAKE_CLASSES}
    assert set(wn) <= set(subset)
    _folders(root / dirname, subset, {w: 2 for w in wn}, wn, ".jpg", seed)


def fake_imagenet_r(root: Path) -> None:
    _fake_subset(root, "imagenet-r", "imagenet_r_wnids.txt", 5)


def fake_imagenet_a(root: Path) -> None:
    _fake_subset(root, "imagenet-a", "imagenet_a_wnids.txt", 6)
    (root / "imagenet-a" / "README.txt").write_text("fake ImageNet-A\n")


def fake_objectnet(root: Path) -> None:
    mapped = sorted(read_json("objectnet_classes.json")["classes"])
    unmapped = ["squeegee", "coaster"]  # stand-ins for the 200 folders that do not overlap ImageNet
    assert not set(unmapped) & set(mapped)
    images = root / "objectnet-1.0" / "images"
    per = {f: 2 for f in mapped[:3]} | {unmapped[0]: 1}
    _folders(images, mapped + unmapped, per, {f: i for i, f in enumerate(mapped + unmapped)}, ".png", 7)
    (root / "objectnet-1.0" / "mappings").mkdir(parents=True, exist_ok=True)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


# (split, y, location) of each fake iWildCam image: 3 classes, ID locations 0-1, OOD locations 2-3.
IWILDCAM_ROWS = [("train", 0, 0), ("train", 1, 0), ("train", 2, 1), ("train", 0, 1), ("train", 1, 1),
                 ("train", 2, 0), ("id_val", 0, 0), ("id_val", 1, 1), ("id_test", 0, 0), ("id_test", 2, 1),
                 ("id_test", 1, 0), ("val", 1, 2), ("val", 2, 2), ("test", 0, 3), ("test", 1, 3), ("test", 2, 3)]


def fake_iwildcam(root: Path) -> None:
    d = root / "iwildcam_v2.0"
    (d / "train").mkdir(parents=True, exist_ok=True)
    (d / "RELEASE_v2.0.txt").write_text("v2.0 (fake)\n")
    rows = []
    for i, (split, y, loc) in enumerate(IWILDCAM_ROWS):
        name = f"{i:08x}-fake.jpg"
        _save(d / "train" / name, y, i)
        rows.append([split, f"{i:08x}", name, y, loc, i, f"2013-06-{1 + i % 28:02d} 10:{i % 60:02d}:00.000"])
    _write_csv(d / "metadata.csv", ["split", "image_id", "filename", "y", "location_remapped",
                                    "sequence_remapped", "datetime"], rows)
    _write_csv(d / "categories.csv", ["y", "category_id", "name"],
               [[0, 0, "empty"], [1, 2, "tayassu pecari"], [2, 3, "dasyprocta punctata"]])


# (split column, timestamp, category index, country) of each fake FMoW row, in row (= image) order.
# ID rows are before 2013, OOD val rows (split val) in 2013-2015, OOD test rows (split test) from 2016;
# 'ATA' has no region in the mapping, so it counts as "Other"; one '.643Z' timestamp exercises the pandas fix.
FMOW_ROWS = [("train", "2002-03-01T10:00:00Z", 0, "USA"), ("train", "2008-07-02T11:30:00Z", 1, "FRA"),
             ("train", "2010-01-05T09:15:00.643Z", 2, "KEN"), ("train", "2012-11-11T08:00:00Z", 0, "CHN"),
             ("val", "2011-05-05T10:00:00Z", 1, "USA"), ("val", "2009-04-04T10:00:00Z", 2, "FRA"),
             ("test", "2010-02-02T10:00:00Z", 0, "KEN"), ("test", "2012-03-03T10:00:00Z", 1, "AUS"),
             ("val", "2014-06-06T10:00:00Z", 2, "CHN"), ("val", "2015-07-07T10:00:00Z", 0, "USA"),
             ("test", "2016-08-08T10:00:00Z", 1, "USA"), ("test", "2017-09-09T10:00:00Z", 2, "KEN"),
             ("test", "2016-10-10T10:00:00Z", 0, "ATA"), ("seq", "2016-01-01T10:00:00Z", 1, "FRA")]
FMOW_REGIONS = [["United States", "US", "USA", "Americas"], ["France", "FR", "FRA", "Europe"],
                ["Kenya", "KE", "KEN", "Africa"], ["China", "CN", "CHN", "Asia"], ["Australia", "AU", "AUS", "Oceania"]]


def fake_fmow(root: Path) -> None:
    from bench.datasets.prompts import classnames

    names = classnames("fmow")
    d = root / "fmow_v1.1"
    (d / "images").mkdir(parents=True, exist_ok=True)
    (d / "RELEASE_v1.1.txt").write_text("v1.1 (fake)\n")
    rows = []
    for i, (split, ts, y, cc) in enumerate(FMOW_ROWS):
        _save(d / "images" / f"rgb_img_{i}.png", y, i)
        rows.append([split, f"{names[y]}_{i}_0_rgb.jpg", names[y], cc, ts, 0.0, 0.0])
    _write_csv(d / "rgb_metadata.csv", ["split", "img_filename", "category", "country_code", "timestamp", "lat", "lon"],
               rows)
    _write_csv(d / "country_code_mapping.csv", ["name", "alpha-2", "alpha-3", "region"], FMOW_REGIONS)


def fake_caltech101(root: Path) -> None:
    folders = read_lines("caltech101_folders.txt")
    images = root / "caltech-101" / "101_ObjectCategories"
    per = {f: 5 for f in folders[:3]} | {"BACKGROUND_Google": 2}
    _folders(images, [*folders, "BACKGROUND_Google"], per, {f: i for i, f in enumerate([*folders, "BACKGROUND_Google"])},
             ".jpg", 8)


def _savemat(path: Path, data: dict) -> None:
    from scipy.io import savemat

    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(str(path), data)


def _annotations(fnames: list[str], classes: list[int]) -> np.ndarray:
    """A MATLAB struct array like the Stanford Cars annotation files (bounding boxes, class, fname)."""
    dtype = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")]
    arr = np.zeros((1, len(fnames)), dtype=dtype)
    for i, (f, c) in enumerate(zip(fnames, classes)):
        arr[0, i] = (1, 1, 20, 20, c, f)
    return arr


def fake_stanfordcars(root: Path) -> None:
    from bench.datasets.prompts import classnames

    d = root / "StanfordCars"
    # Devkit names use '/', where FLYP's folder (and class) names use '-'.
    meta = [n.replace("Ram C-V", "Ram C/V") for n in classnames("stanfordcars")]
    _savemat(d / "devkit" / "cars_meta.mat", {"class_names": np.array([meta], dtype=object)})
    train = [(f"{i + 1:05d}.jpg", 1 + i % 3) for i in range(10)]
    test = [(f"{i + 1:05d}.jpg", 1 + i % 3) for i in range(4)]
    for folder, items in (("cars_train", train), ("cars_test", test)):
        for f, c in items:
            _save(d / folder / f, c, int(f[:5]))
    _savemat(d / "devkit" / "cars_train_annos.mat", {"annotations": _annotations(*map(list, zip(*train)))})
    _savemat(d / "cars_test_annos_withlabels.mat", {"annotations": _annotations(*map(list, zip(*test)))})


def fake_flowers102(root: Path) -> None:
    d = root / "flowers102"
    labels = [1 + i % 3 for i in range(12)]  # official labels 1..3
    for i, y in enumerate(labels):
        _save(d / "jpg" / f"image_{i + 1:05d}.jpg", y, i)
    _savemat(d / "imagelabels.mat", {"labels": np.array([labels])})
    _savemat(d / "setid.mat", {"trnid": np.array([[1, 2, 3, 4, 5, 6]]), "valid": np.array([[7, 8, 9]]),
                               "tstid": np.array([[10, 11, 12]])})


def _label_folders(d: Path, split_dirs: dict[str, str], folders: list[str], per_class: int, suffix: str, seed: int):
    for split, name in split_dirs.items():
        _folders(d / name, folders, {f: per_class for f in folders}, {f: i for i, f in enumerate(folders)}, suffix,
                 seed + len(split))


def fake_pcam(root: Path) -> None:
    _label_folders(root / "patchcamelyon", {s: s for s in ("train", "val", "test")}, ["0", "1"], 3, ".jpeg", 9)


def fake_sst2(root: Path) -> None:
    # The official archive's layout: rendered-sst2/{train,valid,test}/{negative,positive}/
    _label_folders(root / "rendered-sst2", {"train": "train", "val": "valid", "test": "test"},
                   ["negative", "positive"], 3, ".png", 10)


def fake_eurosat(root: Path) -> None:
    folders = read_lines("eurosat_folders.txt")
    _folders(root / "eurosat" / "2750", folders, {f: 5 for f in folders[:3]}, {f: i for i, f in enumerate(folders)},
             ".jpg", 11)


FAKERS = {
    "imagenet": fake_imagenet, "imagenetv2": fake_imagenetv2, "imagenet-r": fake_imagenet_r,
    "imagenet-a": fake_imagenet_a, "imagenet-sketch": fake_sketch, "objectnet": fake_objectnet,
    "iwildcam": fake_iwildcam, "fmow": fake_fmow, "caltech101": fake_caltech101, "stanfordcars": fake_stanfordcars,
    "flowers102": fake_flowers102, "pcam": fake_pcam, "sst2": fake_sst2, "eurosat": fake_eurosat,
}


def make_fake(name: str, root) -> Path:
    """Write the fake copy of dataset `name` under the data root `root`; returns the root."""
    from bench.errors import unknown_name

    if name not in FAKERS:
        raise unknown_name("dataset with a fake copy", name, list(FAKERS))
    root = Path(root).expanduser()
    FAKERS[name](root)
    return root
