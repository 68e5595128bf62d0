"""ImageNet shifts scored on a subset of ImageNet's classes: ImageNet-R and ImageNet-A (200 classes each) and
ObjectNet (113 classes). The model keeps its 1000-way ImageNet head; `project_logits` maps its logits to the
dataset's label space, so a prediction can only be one of the dataset's classes:
  R / A:     the 200 columns of their synsets (labels: position in the sorted synset list = folder order);
  ObjectNet: per class, the max over the ImageNet classes it maps to (labels: position in the sorted list
             of the 113 mapped folders; images in the other 200 folders are not scored).
ObjectNet images carry a 1-2 px border; the reference code meant to crop 2 px per side but composed the crop
after building its dataset, so it never ran. Here it runs (`border_crop: false` reproduces the reference).
"""
from __future__ import annotations

import torch

from bench.datasets.images import ImageListDataset, load_rgb
from bench.datasets.imagenet import WNID_LABEL, _EvalOnly
from bench.datasets.prompts import classnames, read_json, read_lines
from bench.datasets.real import DataInfo, scan, subdirs


class _SynsetSubset(_EvalOnly):
    wnid_file = ""

    def __init__(self, root=None):
        super().__init__(root)
        self.wnids = list(read_lines(self.wnid_file))
        self.columns = torch.tensor([WNID_LABEL[w] for w in self.wnids])  # ascending: the lists are sorted
        names = classnames("imagenet")
        self.classnames = [names[i] for i in self.columns.tolist()]

    def label_of(self):
        return {w: i for i, w in enumerate(self.wnids)}

    def project_logits(self, logits):
        return logits if logits.shape[-1] == len(self.wnids) else logits[:, self.columns.to(logits.device)]


class ImageNetR(_SynsetSubset):
    name = "imagenet-r"
    wnid_file = "imagenet_r_wnids.txt"
    info = DataInfo(
        title="ImageNet-R (renditions, 200 classes)", dirname="imagenet-r",
        layout="imagenet-r/<wnid>/*.jpg    200 synset folders, 30,000 images\n",
        obtain="https://github.com/hendrycks/imagenet-r (imagenet-r.tar)",
        expected={"test": 30_000}, n_classes=200)


class ImageNetA(_SynsetSubset):
    name = "imagenet-a"
    wnid_file = "imagenet_a_wnids.txt"
    info = DataInfo(
        title="ImageNet-A (natural adversarial, 200 classes)", dirname="imagenet-a",
        layout="imagenet-a/<wnid>/*.jpg    200 synset folders, 7,500 images (README.txt is ignored)\n",
        obtain="https://github.com/hendrycks/natural-adv-examples (imagenet-a.tar)",
        expected={"test": 7_500}, n_classes=200)


class BorderCropped(ImageListDataset):
    """ObjectNet images without their outer `px` pixels on each side."""

    def __init__(self, samples, transform=None, px: int = 2):
        super().__init__(samples, transform)
        self.px = px

    def __getitem__(self, i):
        path, label = self.samples[i]
        img = load_rgb(path)
        w, h = img.size
        if self.px and w > 2 * self.px and h > 2 * self.px:
            img = img.crop((self.px, self.px, w - self.px, h - self.px))
        return (self.transform(img) if self.transform else img), label


class ObjectNet(_EvalOnly):
    name = "objectnet"
    info = DataInfo(
        title="ObjectNet 1.0 (113 ImageNet-overlapping classes)", dirname="objectnet-1.0",
        layout="""
objectnet-1.0/images/<folder>/*.png    313 object folders, about 50,000 images;
  the 113 folders that overlap ImageNet (18,574 images) are scored, the others ignored
""",
        obtain="https://objectnet.dev/download.html (objectnet-1.0.zip; unzip keeping objectnet-1.0/images/)",
        expected={"test": 18_574}, n_classes=113)

    def __init__(self, root=None, border_crop: bool = True):
        self.border_crop = bool(border_crop)
        super().__init__(root)
        if not (self.dir / "images").is_dir():
            raise self.fail("no images/ folder", self.dir / "images")
        self.dir = self.dir / "images"
        mapping = read_json("objectnet_classes.json")["classes"]
        self.folders = sorted(mapping)
        self.groups = [mapping[f]["imagenet"] for f in self.folders]
        self.classnames = [mapping[f]["name"].lower() for f in self.folders]

    def label_of(self):
        return {f: i for i, f in enumerate(self.folders)}

    def _scan(self, split):
        return scan(self.dir, self.label_of(), unknown="ignore")

    def _build_split(self, split, transform):
        items = self.samples(split)
        if not items:
            raise self.fail("none of the 113 ImageNet-overlapping folders holds images", self.dir)
        return BorderCropped(items, transform, px=2 if self.border_crop else 0)

    def project_logits(self, logits):
        if logits.shape[-1] == len(self.groups):
            return logits
        return torch.stack([logits[:, g].max(dim=1).values for g in self.groups], dim=1)

    def problems(self):
        absent = len(set(self.folders) - set(subdirs(self.dir)))
        return [f"{self.dir}: {absent} of the 113 scored folders are absent"] if absent else []

    def details(self):
        return {**super().details(), "border_crop": "2px" if self.border_crop else "none (as the reference code)"}
