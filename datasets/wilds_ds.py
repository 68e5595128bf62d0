"""iWildCam v2.0 and FMoW v1.1 through the `wilds` package: `wilds.get_dataset(..., download=False)` reads
the user's copy and defines the official splits (train, id_val, id_test, val = OOD val, test = OOD test);
the dataset's own `eval` gives the official metrics (iWildCam `F1-macro_all`, macro-F1 over the labels present;
FMoW `acc_avg`, `acc_worst_region` without "Other", `acc_worst_year`).

One wilds dataset object per source (FLYP rebuilt it for every split). Images are read here rather than by
wilds' get_input, so every image becomes RGB and an unreadable file raises an error naming it.
Class names: iWildCam's 182 English names (FLYP's labels.csv, y < 99999, lowercased) and FMoW's 62 raw names.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from bench.datasets.base import DatasetSource
from bench.datasets.fingerprint import dir_tree
from bench.hashing import digest
from bench.datasets.images import load_rgb
from bench.datasets.prompts import classnames, templates
from bench.datasets.real import DataInfo, data_root, image_names, missing
from bench.datasets.wilds_patches import import_wilds
from bench.errors import BenchError


class WildsImages(Dataset):
    """(image, label, metadata row) for the rows `indices` of a wilds dataset (a split from get_subset). It keeps
    paths, labels and metadata only, so DataLoader workers never import wilds."""

    def __init__(self, source: "WildsSource", indices, transform: Callable | None):
        idx = [int(i) for i in indices]
        self.paths = [source.image_path(i) for i in idx]
        self.targets = [int(y) for y in source.ds.y_array[idx].tolist()]
        self.metadata = source.ds.metadata_array[idx]
        self.indices, self.transform = idx, transform

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        img = load_rgb(self.paths[i])
        return (self.transform(img) if self.transform else img), self.targets[i], self.metadata[i]


class WildsSource(DatasetSource):
    wilds_name = ""
    version = ""
    info: DataInfo
    required: tuple[str, ...] = ()

    def __init__(self, root=None):
        super().__init__()
        self.data_root = data_root(root)
        self.dir = self.data_root / self.info.dirname
        if not self.dir.is_dir():
            raise missing(self.name, self.info, self.dir)
        absent = [f for f in (f"RELEASE_v{self.version}.txt", *self.required) if not (self.dir / f).exists()]
        if absent:
            # Without the RELEASE file wilds would try to download; say what is missing instead.
            raise missing(self.name, self.info, self.dir, f"incomplete copy, missing {', '.join(absent)}")
        wilds = import_wilds()
        self.wilds_version = wilds.__version__
        try:
            self.ds = wilds.get_dataset(dataset=self.wilds_name, version=self.version, root_dir=str(self.data_root),
                                        download=False)
        except Exception as exc:  # wilds raises assorted errors (KeyError, AssertionError, ...) on bad metadata
            raise missing(self.name, self.info, self.dir, f"wilds could not read it ({type(exc).__name__}: {exc})") from exc
        self.classnames, self.templates = classnames(self.name), templates(self.name)
        if self.ds.n_classes > len(self.classnames):
            raise missing(self.name, self.info, self.dir, f"its metadata has {self.ds.n_classes} classes, "
                          f"expected at most {len(self.classnames)}")

    def split_names(self) -> list[str]:
        return list(self.ds.split_dict)

    def image_path(self, idx: int) -> Path:
        raise NotImplementedError

    def _build_split(self, split, transform):
        indices = self.ds.get_subset(split).indices
        if len(indices) == 0:
            raise missing(self.name, self.info, self.dir, f"split '{split}' has no rows in the metadata")
        return WildsImages(self, indices, transform)

    def official_metrics(self, split, logits, labels, metadata):
        """The dataset's own eval on argmax predictions (as FLYP's post_loop_metrics)."""
        if metadata is None:
            raise BenchError(f"Dataset '{self.name}': WILDS metrics need the metadata each batch carries.")
        results, _ = self.ds.eval(logits.argmax(dim=-1).cpu(), labels.cpu(), metadata.cpu())
        return {k: float(v) for k, v in results.items()}

    def split_sizes(self) -> dict[str, int]:
        return {s: int((self.ds.split_array == i).sum()) for s, i in self.ds.split_dict.items()}

    def expected_images(self) -> list[str]:
        raise NotImplementedError

    def problems(self) -> list[str]:
        folder = self.image_path(0).parent
        present = set(image_names(folder)) if folder.is_dir() else set()
        absent = [n for n in self.expected_images() if n not in present]
        if absent:
            return [f"{folder}: {len(absent)} images named in the metadata are absent (e.g. {absent[0]})"]
        return []

    def details(self) -> dict:
        return {"root": str(self.dir), "wilds": self.wilds_version, "version": self.version}

    def fingerprint(self) -> str:
        """The WILDS release and package version, plus the release folder's layout: metadata files by size and
        mtime, the image folder by its mtime (see bench.datasets.fingerprint.dir_tree)."""
        return digest(self.name, self.version, self.wilds_version, dir_tree(self.dir, depth=2))


class IWildCam(WildsSource):
    name = "iwildcam"
    wilds_name, version = "iwildcam", "2.0"
    required = ("metadata.csv", "train")
    info = DataInfo(
        title="iWildCam v2.0 (WILDS)", dirname="iwildcam_v2.0",
        layout="""
iwildcam_v2.0/RELEASE_v2.0.txt
iwildcam_v2.0/metadata.csv      split, filename, y, location_remapped, sequence_remapped, datetime, ...
iwildcam_v2.0/categories.csv
iwildcam_v2.0/train/<filename>  all 203,029 images of every split
""",
        obtain="https://wilds.stanford.edu/downloads (iWildCam v2.0, 11 GB), or once, where its host answers: "
               "python -c \"import wilds; wilds.get_dataset('iwildcam', root_dir='$BENCH_DATA', download=True)\"",
        expected={"train": 129_809, "id_val": 7_314, "id_test": 8_154, "val": 14_961, "test": 42_791}, n_classes=182)

    def image_path(self, idx):
        return Path(self.ds.data_dir) / "train" / self.ds._input_array[idx]

    def expected_images(self):
        return [str(n) for n in self.ds._input_array]


class FMoW(WildsSource):
    name = "fmow"
    wilds_name, version = "fmow", "1.1"
    required = ("rgb_metadata.csv", "country_code_mapping.csv", "images")
    info = DataInfo(
        title="FMoW v1.1 (WILDS)", dirname="fmow_v1.1",
        layout="""
fmow_v1.1/RELEASE_v1.1.txt
fmow_v1.1/rgb_metadata.csv          split, category, country_code, timestamp, ...
fmow_v1.1/country_code_mapping.csv  alpha-3, region, ...
fmow_v1.1/images/rgb_img_<row>.png
""",
        obtain="https://wilds.stanford.edu/downloads (FMoW v1.1, 50 GB), or once, where its host answers: "
               "python -c \"import wilds; wilds.get_dataset('fmow', root_dir='$BENCH_DATA', download=True)\"",
        expected={"train": 76_863, "id_val": 11_483, "id_test": 11_327, "val": 19_915, "test": 22_108}, n_classes=62)

    def image_path(self, idx):
        return Path(self.ds.root) / "images" / f"rgb_img_{self.ds.full_idxs[idx]}.png"

    def expected_images(self):
        return [f"rgb_img_{i}.png" for i in self.ds.full_idxs]
