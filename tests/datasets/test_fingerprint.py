"""Data fingerprints (in describe(), so in MLflow params and feature-cache keys) and a feature cache that never
serves stale or corrupt entries."""
import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from bench.datasets.fake import make_folder_tree
from bench.datasets.fake_real import FAKERS, make_fake
from bench.datasets.folder import FolderDataset
from bench.datasets.toy import worlds
from bench.datasets.toy.source import ToyCameras, ToyShift
from bench.train.evaluate import FeatureCache


@pytest.fixture
def tree(tmp_path):
    return make_folder_tree(tmp_path / "d", n_classes=2, per_split={"train": 3, "val": 1, "test": 1})


def fp(root):
    return FolderDataset(root).describe()["fingerprint"]


def bump_mtime(path, seconds=5):
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


def test_folder_fingerprint_is_stable_and_follows_every_file(tree):
    first = fp(tree)
    assert first == fp(tree) and len(first) == 16
    img = tree / "train" / "class_00" / "0000.png"
    seen = {first}
    bump_mtime(img)                                     # same bytes, touched
    seen.add(fp(tree))
    img.write_bytes(img.read_bytes() + b"\0")           # same name, another size
    seen.add(fp(tree))
    Image.new("RGB", (32, 32)).save(tree / "test" / "class_01" / "new.png")   # a file added to another split
    seen.add(fp(tree))
    (tree / "classnames.txt").write_text("one\ntwo\n")  # the prompts change with the class names
    seen.add(fp(tree))
    (tree / "test" / "class_01" / "new.png").unlink()   # a file removed
    seen.add(fp(tree))
    assert len(seen) == 6


def test_toy_fingerprint_is_its_generation_parameters():
    # the same data spelled otherwise (default sizes given explicitly, no render cache) has the same fingerprint
    same = ToyShift(sizes={"train": worlds.SHIFT_SIZES["train"]}, cache=False)
    assert same.describe()["fingerprint"] == ToyShift().fingerprint()
    assert ToyShift(size=32).fingerprint() != ToyShift().fingerprint()  # other pixels
    assert ToyShift(seed=1).fingerprint() != ToyShift().fingerprint()
    assert ToyShift(sizes={"train": 10}).fingerprint() != ToyShift().fingerprint()
    assert ToyCameras().fingerprint() != ToyShift().fingerprint()


@pytest.fixture(scope="module")
def real_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    for name in FAKERS:
        make_fake(name, root)
    return root


def test_every_registered_dataset_describes_a_fingerprint(real_root, tree):
    from bench.datasets import DATASETS

    for name in DATASETS.names():
        if name in ("iwildcam", "fmow"):
            pytest.importorskip("wilds")
        src = DATASETS.get(name)(root=tree) if name == "folder" else \
            DATASETS.get(name)() if name.startswith("toy") else DATASETS.get(name)(root=real_root)
        assert len(src.describe()["fingerprint"]) == 16, name


def test_real_dataset_fingerprint_follows_its_folders_not_each_file(tmp_path):
    from bench.datasets.transfer import RenderedSST2

    root = make_fake("sst2", tmp_path)
    before = RenderedSST2(root).fingerprint()
    assert RenderedSST2(root).fingerprint() == before
    folder = root / "rendered-sst2" / "train" / "negative"
    Image.new("RGB", (8, 8)).save(folder / "added.png")   # a new image changes its class folder's mtime
    after = RenderedSST2(root).fingerprint()
    assert after != before
    assert RenderedSST2(root, shots=1).fingerprint() == after  # sampling options are in describe(), not the data hash


class Encoder(torch.nn.Module):
    """Counts the images it encodes, so a test sees whether the cache was used."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def encode_image(self, x):
        self.calls += len(x)
        return x.mean(dim=(2, 3))


@pytest.fixture
def cache(tmp_path):
    tf = transforms.Compose([transforms.Resize((8, 8)), transforms.ToTensor()])
    return FeatureCache(tmp_path / "cache", "enc", Encoder(), tf, batch_size=4, workers=0, device=torch.device("cpu"))


def entries(cache):
    return sorted(p.name for p in cache.cache_dir.iterdir())


def test_cache_is_reused_for_unchanged_data(tree, cache):
    x, y = cache(FolderDataset(tree), "train")
    calls = cache.model.calls
    assert calls == 6 and x.shape == (6, 3)
    x2, y2 = cache(FolderDataset(tree), "train")
    assert cache.model.calls == calls and torch.equal(x, x2) and torch.equal(y, y2)


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated", "foreign"])
def test_corrupt_cache_entry_is_moved_aside_and_rebuilt(tree, cache, caplog, damage):
    x, y = cache(FolderDataset(tree), "train")
    (path,) = cache.cache_dir.glob("*.pt")
    data = path.read_bytes()
    damaged = {"garbage": b"\x80\x02not a torch file at all", "empty": b"", "truncated": data[: len(data) // 2]}
    if damage == "foreign":
        torch.save({"x": torch.zeros(2, 3), "y": torch.zeros(2), "ident": "another key"}, path)
    else:
        path.write_bytes(damaged[damage])
    calls = cache.model.calls
    with caplog.at_level(logging.WARNING):
        x2, y2 = cache(FolderDataset(tree), "train")
    assert cache.model.calls == calls + 6  # recomputed, not loaded
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert entries(cache) == [path.name, path.name + ".corrupt"]
    assert "moved aside" in caplog.text and path.name in caplog.text
    cache(FolderDataset(tree), "train")  # and the rebuilt entry is good
    assert cache.model.calls == calls + 6


def test_changed_training_images_invalidate_the_cache(tree, cache):
    src = FolderDataset(tree)  # one source, as in a process that runs several jobs
    x, _ = cache(src, "train")
    img = tree / "train" / "class_00" / "0001.png"
    Image.fromarray(np.full((32, 32, 3), 255, np.uint8)).save(img)  # same path, new content
    bump_mtime(img)
    calls = cache.model.calls
    x2, _ = cache(src, "train")
    assert cache.model.calls == calls + 6 and not torch.equal(x, x2)
    Image.new("RGB", (32, 32)).save(tree / "train" / "class_01" / "extra.png")  # a file added
    x3, y3 = cache(src, "train")
    assert len(x3) == 7 and int((y3 == 1).sum()) == 4
