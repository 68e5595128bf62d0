"""Transfer-learning datasets of the paper: Caltech101, StanfordCars, Flowers102, PatchCamelyon, Rendered SST2,
plus EuroSAT. Top-1 accuracy; class names and templates are FLYP's (CLIP's curated names).

Each reads either the folders FLYP's datacreation scripts write, <dir>/{train,val,test}/<class>/ (class order
= sorted folder names, as torchvision's ImageFolder), or the official download, reproducing FLYP's splits:
  Caltech101    101_ObjectCategories/, BACKGROUND_Google excluded; FLYP split 60/20/20 per image without a
                seed, here a seeded stratified 60/20/20 (`split_seed`, recorded by describe()).
  StanfordCars  devkit/*.mat + cars_test_annos_withlabels.mat; official train split 80/20 by sklearn
                train_test_split(test_size=0.2, random_state=10) exactly as FLYP; official test.
  Flowers102    jpg/ (or all_images/), imagelabels.mat, setid.mat: the official trnid / valid / tstid.
  EuroSAT       2750/ or EuroSAT_RGB/ <Class>/: no official split, seeded stratified 60/20/20.
  PCam, SST2    folders only (PCam ships .h5 files: convert them, e.g. with FLYP's patchcamelyon.py; Rendered
                SST2's official archive is already folders, with valid/ for val).
"""
from __future__ import annotations

from pathlib import Path

from bench.datasets.prompts import classnames, read_lines, templates
from bench.datasets.real import DataInfo, FileSource, Sample, scan, stratified_split, subdirs


class _Transfer(FileSource):
    splits = ("train", "val", "test")
    key = ""                          # name of the class-name and template data files
    dirnames: tuple[str, ...] = ()    # folder names of the same data under the root (first one documented)
    split_dirs = {"train": ("train",), "val": ("val",), "test": ("test",)}

    def __init__(self, root=None, split_seed: int = 0, shots: int | None = None, shot_seed: int = 0):
        super().__init__(root, shots, shot_seed)
        self.split_seed = int(split_seed)
        self.dir = self.find_dir(self.dirnames or (self.info.dirname,))
        self.classnames, self.templates = classnames(self.key), templates(self.key)
        self.prepared = {s: next((self.dir / d for d in names if (self.dir / d).is_dir()), None)
                         for s, names in self.split_dirs.items()}
        if all(self.prepared.values()):
            self.layout = "folders"
        else:
            self.layout = "official"
            self.check_official()

    def folder_labels(self) -> dict[str, int]:
        """Class folder name -> label in the prepared layout (FLYP wrote names with '_' for ' ')."""
        return {c.replace(" ", "_"): i for i, c in enumerate(self.classnames)}

    def check_official(self) -> None:
        raise self.fail("no train/, val/ and test/ class folders")

    def _scan(self, split):
        if self.layout == "folders":
            return scan(self.prepared[split], self.folder_labels())
        return self.scan_official(split)

    def scan_official(self, split: str) -> list[Sample]:
        raise NotImplementedError

    def problems(self):
        if self.layout != "folders":
            return []
        out = []
        for split, d in self.prepared.items():
            absent = len(set(self.folder_labels()) - set(subdirs(d)))
            if absent:
                out.append(f"{d}: {absent} of the {len(self.classnames)} class folders are absent")
        return out

    def official_split(self) -> str | None:
        """How the official layout is split into train/val/test, where bench carves the split itself."""
        return None

    def details(self):
        out = {**super().details(), "layout": self.layout}
        if self.layout == "official" and self.official_split():
            out["split"] = self.official_split()
        return out


class _CarvedSplits(_Transfer):
    """Official data without a split: a seeded, stratified 60/20/20 train/val/test split of class folders."""
    official_dirs: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()

    def check_official(self):
        self.images_dir = next((self.dir / d for d in self.official_dirs if (self.dir / d).is_dir()), None)
        if self.images_dir is None:
            raise self.fail(f"neither train/val/test folders nor {' or '.join(self.official_dirs)}/")

    def scan_official(self, split):
        if "all" not in self._cache:
            self._cache["all"] = scan(self.images_dir, self.folder_labels(), skip=self.skip)
        parts = stratified_split(self._cache["all"], {"train": 0.6, "val": 0.2, "test": 0.2}, self.split_seed)
        return parts[split]

    def problems(self):
        if self.layout == "folders":
            return super().problems()
        absent = len(set(self.folder_labels()) - set(subdirs(self.images_dir)))
        return [f"{self.images_dir}: {absent} of the {len(self.classnames)} class folders are absent"] if absent else []

    def official_split(self) -> str:
        return f"seeded stratified 60/20/20, seed {self.split_seed}"


class Caltech101(_CarvedSplits):
    name, key = "caltech101", "caltech101"
    dirnames = ("caltech-101", "caltech101")
    official_dirs = ("101_ObjectCategories",)
    skip = ("BACKGROUND_Google",)
    info = DataInfo(
        title="Caltech101", dirname="caltech-101",
        layout="""
caltech-101/101_ObjectCategories/<category>/*.jpg   102 folders; BACKGROUND_Google is not a class
  or FLYP's split: caltech-101/{train,val,test}/<category>/
""",
        obtain="https://data.caltech.edu/records/mzrjq-6wc02 (caltech-101.zip, inside it 101_ObjectCategories.tar.gz)",
        expected={"all": 8_677}, n_classes=101)

    def folder_labels(self):
        return {f: i for i, f in enumerate(read_lines("caltech101_folders.txt"))}  # curated names follow this order


class EuroSAT(_CarvedSplits):
    name, key = "eurosat", "eurosat"
    dirnames = ("eurosat", "EuroSAT")
    official_dirs = ("2750", "EuroSAT_RGB", ".")
    info = DataInfo(
        title="EuroSAT (RGB)", dirname="eurosat",
        layout="eurosat/2750/<Class>/*.jpg   (or EuroSAT_RGB/<Class>/) 10 folders AnnualCrop ... SeaLake\n",
        obtain="https://github.com/phelber/EuroSAT (EuroSAT RGB zip)", expected={"all": 27_000}, n_classes=10)

    def folder_labels(self):
        return {f: i for i, f in enumerate(read_lines("eurosat_folders.txt"))}


def loadmat(path: Path) -> dict:
    from scipy.io import loadmat as _loadmat

    return _loadmat(str(path), squeeze_me=True)


class StanfordCars(_Transfer):
    name, key = "stanfordcars", "stanfordcars"
    dirnames = ("StanfordCars", "stanford_cars")
    official_files = ("devkit/cars_meta.mat", "devkit/cars_train_annos.mat", "cars_test_annos_withlabels.mat",
                      "cars_train", "cars_test")
    info = DataInfo(
        title="Stanford Cars", dirname="StanfordCars",
        layout="""
StanfordCars/cars_train/*.jpg, StanfordCars/cars_test/*.jpg
StanfordCars/devkit/cars_meta.mat, StanfordCars/devkit/cars_train_annos.mat
StanfordCars/cars_test_annos_withlabels.mat
  or FLYP's split: StanfordCars/{train,val,test}/<Class_Name_Year>/
""",
        obtain="Stanford Cars (Krause et al. 2013); the original ai.stanford.edu page is offline, use a mirror "
               "that keeps cars_train/, cars_test/, devkit/ and cars_test_annos_withlabels.mat",
        expected={"train": 6_515, "val": 1_629, "test": 8_041}, n_classes=196)

    def __init__(self, root=None, split_seed: int = 10, shots=None, shot_seed=0):
        super().__init__(root, split_seed, shots, shot_seed)  # 10: FLYP's random_state

    def check_official(self):
        absent = [f for f in self.official_files if not (self.dir / f).exists()]
        if absent:
            raise self.fail(f"neither train/val/test folders nor the official files (missing {', '.join(absent)})")

    def scan_official(self, split):
        label = {c: i for i, c in enumerate(self.classnames)}
        # FLYP's folder names replaced ' ' by '_' and '/' by '-'; its class names read '_' back as ' '.
        meta = [str(n).replace("/", "-") for n in loadmat(self.dir / "devkit" / "cars_meta.mat")["class_names"]]
        to_label = [label[n] for n in meta]
        if split == "test":
            ann = loadmat(self.dir / "cars_test_annos_withlabels.mat")["annotations"]
            return [(self.dir / "cars_test" / str(f), to_label[int(c) - 1]) for f, c in zip(ann["fname"], ann["class"])]
        from sklearn.model_selection import train_test_split

        ann = loadmat(self.dir / "devkit" / "cars_train_annos.mat")["annotations"]
        files, labels = [str(f) for f in ann["fname"]], [int(c) for c in ann["class"]]
        x_train, x_val, y_train, y_val = train_test_split(files, labels, test_size=0.2, random_state=self.split_seed)
        xs, ys = (x_train, y_train) if split == "train" else (x_val, y_val)
        return [(self.dir / "cars_train" / f, to_label[c - 1]) for f, c in zip(xs, ys)]

    def official_split(self) -> str:
        return f"official train split 80/20 by train_test_split(random_state={self.split_seed})"


class Flowers102(_Transfer):
    name, key = "flowers102", "flowers102"
    dirnames = ("flowers102", "flowers-102")
    info = DataInfo(
        title="Oxford Flowers102", dirname="flowers102",
        layout="""
flowers102/jpg/image_00001.jpg ...   (or all_images/)
flowers102/imagelabels.mat, flowers102/setid.mat
  or FLYP's split: flowers102/{train,val,test}/<class_name>/
""",
        obtain="https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ (102flowers.tgz, imagelabels.mat, setid.mat)",
        expected={"train": 1_020, "val": 1_020, "test": 6_149}, n_classes=102)

    def check_official(self):
        self.images_dir = next((self.dir / d for d in ("jpg", "all_images") if (self.dir / d).is_dir()), None)
        absent = [f for f in ("imagelabels.mat", "setid.mat") if not (self.dir / f).is_file()]
        if self.images_dir is None or absent:
            raise self.fail("neither train/val/test folders nor jpg/, imagelabels.mat and setid.mat")

    def scan_official(self, split):
        label = {c: i for i, c in enumerate(self.classnames)}
        official = [label[n] for n in read_lines("flowers102_official_order.txt")]  # official label - 1 -> ours
        labels = loadmat(self.dir / "imagelabels.mat")["labels"]
        ids = loadmat(self.dir / "setid.mat")[{"train": "trnid", "val": "valid", "test": "tstid"}[split]]
        return [(self.images_dir / f"image_{int(i):05d}.jpg", official[int(labels[int(i) - 1]) - 1]) for i in ids]


class PatchCamelyon(_Transfer):
    name, key = "pcam", "pcam"
    dirnames = ("patchcamelyon", "pcam")
    info = DataInfo(
        title="PatchCamelyon", dirname="patchcamelyon",
        layout="patchcamelyon/{train,val,test}/{0,1}/*.jpeg   (label folders; 0: lymph node, 1: with metastatic tissue)\n",
        obtain="https://github.com/basveeling/pcam (.h5 files; convert them into the label folders, e.g. with FLYP's "
               "datacreation_scripts/patchcamelyon.py)",
        expected={"train": 262_144, "val": 32_768, "test": 32_768}, n_classes=2)

    def folder_labels(self):
        return {"0": 0, "1": 1}

    def check_official(self):
        h5 = sorted(p.name for p in self.dir.glob("*.h5"))
        raise self.fail("found the official .h5 files but no train/val/test image folders: convert them first"
                        if h5 else "no train/, val/ and test/ label folders")


class RenderedSST2(_Transfer):
    name, key = "sst2", "sst2"
    dirnames = ("sst2", "rendered-sst2")
    split_dirs = {"train": ("train",), "val": ("val", "valid"), "test": ("test",)}
    info = DataInfo(
        title="Rendered SST2", dirname="sst2",
        layout="sst2/{train,val,test}/{negative,positive}/*.png   (the official rendered-sst2/ with valid/ also works)\n",
        obtain="https://github.com/openai/CLIP/blob/main/data/rendered-sst2.md (rendered-sst2.tgz)",
        expected={"train": 6_920, "val": 872, "test": 1_821}, n_classes=2)

    def folder_labels(self):
        return {"negative": 0, "positive": 1}
