import numpy as np
import pytest
from PIL import Image

from bench.datasets.fake import make_folder_tree
from bench.datasets.folder import FolderDataset
from bench.errors import BenchError


def test_reads_classnames_templates_and_splits(folder_root):
    ds = FolderDataset(folder_root)
    assert ds.classnames == ["red circle", "green square", "blue triangle", "yellow star"]
    assert ds.templates[0] == "a photo of a {}."
    assert ds.split_names() == ["ood", "test", "train", "val"]
    train = ds.split("train")
    assert len(train) == 40 and sorted(set(train.targets)) == [0, 1, 2, 3]
    img, label = train[0]
    assert img.mode == "RGB" and label == 0


def test_carves_a_seeded_stratified_validation_split(tmp_path):
    root = make_folder_tree(tmp_path / "d", n_classes=3, per_split={"train": 10, "test": 2}, with_text_files=False)
    a, b = FolderDataset(root), FolderDataset(root)
    val, train = a.split("val"), a.split("train")
    assert len(val) == 3 and len(train) == 27
    assert {p for p, _ in val.samples}.isdisjoint({p for p, _ in train.samples})
    assert [p for p, _ in val.samples] == [p for p, _ in b.split("val").samples]
    assert [p for p, _ in FolderDataset(root, split_seed=1).split("val").samples] != [p for p, _ in val.samples]
    assert a.classnames == ["class 00", "class 01", "class 02"] and "seed 0" in a.describe()["val"]


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P"])
def test_any_image_mode_loads_as_rgb(tmp_path, mode):
    root = make_folder_tree(tmp_path / "d", n_classes=2, per_split={"train": 2, "val": 1, "test": 1})
    path = root / "train" / "class_00" / "odd.jpg" if mode in ("L", "CMYK") else root / "train" / "class_00" / "odd.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).convert(mode).save(path)
    split = FolderDataset(root).split("train")
    idx = [i for i, (p, _) in enumerate(split.samples) if p == path][0]
    assert split[idx][0].mode == "RGB"


def test_corrupt_image_error_names_the_file(tmp_path):
    root = make_folder_tree(tmp_path / "d", n_classes=2, per_split={"train": 2, "val": 1, "test": 1})
    bad = root / "train" / "class_01" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    split = FolderDataset(root).split("train")
    idx = [i for i, (p, _) in enumerate(split.samples) if p == bad][0]
    with pytest.raises(BenchError, match="broken.jpg"):
        split[idx]


def test_layout_problems_get_clear_errors(tmp_path):
    root = make_folder_tree(tmp_path / "d", n_classes=2, per_split={"train": 2, "test": 1})
    (root / "classnames.txt").write_text("only one\n")
    with pytest.raises(BenchError, match="lists 1 names but .* has 2 class folders"):
        FolderDataset(root)
    (root / "classnames.txt").unlink()
    (root / "templates.txt").write_text("no placeholder here\n")
    with pytest.raises(BenchError, match="needs a '\\{\\}'"):
        FolderDataset(root)
    with pytest.raises(BenchError, match="no 'train' split"):
        FolderDataset(root / "test")
    (root / "templates.txt").unlink()
    (root / "test" / "class_99").mkdir()
    with pytest.raises(BenchError, match="class folders not in the training split"):
        FolderDataset(root).split("test")
