"""ImageNet (ILSVRC-2012) and its full-label-space shifts: ImageNetV2 (matched frequency) and ImageNet-Sketch.

Labels are positions in the sorted list of the 1000 synset ids (ImageFolder's order, which the CLIP class
names follow), looked up by folder name, so a partial copy never shifts labels. The paper trained on all of
ILSVRC train and reported the last epoch (FLYP issue #22); `train_full` is that set. For selection on held-out
data, `train` + `heldout_val` split it: a seeded, stratified `heldout_fraction` per class (default 2%, as model
soups did), recorded by describe().
"""
from __future__ import annotations

import os

from bench.datasets.prompts import classnames, read_lines, templates
from bench.datasets.real import DataInfo, FileSource, scan, stratified_split, subdirs
from bench.errors import BenchError

WNIDS = read_lines("imagenet_wnids.txt")
WNID_LABEL = {w: i for i, w in enumerate(WNIDS)}


def has_subdir(path) -> bool:
    with os.scandir(path) as it:
        return any(e.is_dir() for e in it)


class ImageNet(FileSource):
    name = "imagenet"
    info = DataInfo(
        title="ImageNet ILSVRC-2012", dirname="ILSVRC2012",
        layout="""
ILSVRC2012/train/<wnid>/*.JPEG     1000 synset folders (n01440764 ...), 1,281,167 images
ILSVRC2012/val/<wnid>/*.JPEG       50,000 images sorted into the same 1000 folders (val_dirs/ is also accepted)
""",
        obtain="https://image-net.org/download.php (ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar; sort val "
               "into <wnid> folders, e.g. with the common valprep.sh script)",
        expected={"train_full": 1_281_167, "val": 50_000}, n_classes=1000)
    splits = ("train", "heldout_val", "train_full", "val")
    val_split = "heldout_val"

    def __init__(self, root=None, heldout_fraction: float = 0.02, split_seed: int = 0, shots: int | None = None,
                 shot_seed: int = 0):
        super().__init__(root, shots, shot_seed)
        if not 0 < heldout_fraction < 1:
            raise BenchError(f"Dataset 'imagenet': heldout_fraction must be in (0, 1), got {heldout_fraction}.")
        self.heldout_fraction, self.split_seed = float(heldout_fraction), int(split_seed)
        self._full: list | None = None
        self._parts: dict | None = None
        self.classnames, self.templates = classnames("imagenet"), templates("imagenet")
        if not self.dir.is_dir():
            raise self.fail()
        if not (self.dir / "train").is_dir():
            raise self.fail("no train/ folder", self.dir / "train")
        # FLYP reads val_dirs/ first, then val/; wise-ft reads val/.
        self.val_dir = next((self.dir / d for d in ("val_dirs", "val") if (self.dir / d).is_dir()), None)
        if self.val_dir is None:
            raise self.fail("no val/ (or val_dirs/) folder", self.dir / "val")
        if not has_subdir(self.val_dir):
            raise self.fail("val/ has no <wnid> class folders (the official archive is flat: sort it into the "
                            "synset folders first)", self.val_dir)

    def _scan(self, split):
        if split == "val":
            return scan(self.val_dir, WNID_LABEL)
        if self._full is None:  # one scan of the 1.28M training files serves train, heldout_val and train_full
            self._full = scan(self.dir / "train", WNID_LABEL)
        if split == "train_full":
            return self._full
        if self._parts is None:
            self._parts = stratified_split(self._full, {"train": 1 - self.heldout_fraction,
                                                        "heldout_val": self.heldout_fraction}, self.split_seed)
        return self._parts[split]

    def problems(self):
        out = []
        for d in (self.dir / "train", self.val_dir):
            absent = len(set(WNIDS) - set(subdirs(d)))
            if absent:
                out.append(f"{d}: {absent} of the 1000 class folders are absent")
        return out

    def details(self):
        return {**super().details(), "val_dir": self.val_dir.name,
                "heldout": f"seeded {self.heldout_fraction:g} of train per class, seed {self.split_seed}"}


class _EvalOnly(FileSource):
    """A test-only shift of ImageNet: one split, `test`, scored with the ImageNet head."""
    splits = ("test",)
    alt_dirnames: tuple[str, ...] = ()

    def __init__(self, root=None):
        super().__init__(root)
        self.classnames, self.templates = classnames("imagenet"), templates("imagenet")
        self.dir = self.find_dir((self.info.dirname, *self.alt_dirnames))
        if not has_subdir(self.dir):
            raise self.fail("no class folders inside")

    def label_of(self) -> dict[str, int]:
        return WNID_LABEL

    def _scan(self, split):
        return scan(self.dir, self.label_of())

    def problems(self):
        absent = len(set(self.label_of()) - set(subdirs(self.dir)))
        return [f"{self.dir}: {absent} of the {len(self.label_of())} class folders are absent"] if absent else []


class ImageNetV2(_EvalOnly):
    name = "imagenetv2"
    info = DataInfo(
        title="ImageNetV2 matched-frequency", dirname="ImageNetV2-matched-frequency",
        layout="""
ImageNetV2-matched-frequency/<0..999>/*.jpeg    folder = ImageNet class index, 10,000 images
  (the Hugging Face archive's imagenetv2-matched-frequency-format-val/ is also accepted)
""",
        obtain="https://huggingface.co/datasets/vaishaal/ImageNetV2 (imagenetv2-matched-frequency.tar.gz); "
               "the imagenetv2_pytorch package would download it implicitly, this loader never does",
        expected={"test": 10_000}, n_classes=1000)
    alt_dirnames = ("imagenetv2-matched-frequency-format-val",)

    def label_of(self):
        return {str(i): i for i in range(1000)}  # folder names are integers, not wnids


class ImageNetSketch(_EvalOnly):
    name = "imagenet-sketch"
    info = DataInfo(
        title="ImageNet-Sketch", dirname="sketch",
        layout="sketch/<wnid>/*.JPEG    1000 synset folders, 50,889 images\n",
        obtain="https://github.com/HaohanWang/ImageNet-Sketch (Google Drive / Kaggle / Hugging Face "
               "'imagenet_sketch'; keep the sketch/ folder)",
        expected={"test": 50_889}, n_classes=1000)
