"""ImageNet and its shifts on fake trees in the real layouts: splits, labels, projections, errors."""
import numpy as np
import pytest
import torch
from PIL import Image

from bench.datasets.fake_real import FAKE_CLASSES, make_fake
from bench.datasets.imagenet import WNIDS, ImageNet, ImageNetSketch, ImageNetV2
from bench.datasets.imagenet_subsets import ImageNetA, ImageNetR, ObjectNet
from bench.datasets.prompts import read_json, read_lines
from bench.errors import BenchError

SHIFTS = ["imagenet", "imagenetv2", "imagenet-r", "imagenet-a", "imagenet-sketch", "objectnet"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for name in SHIFTS:
        make_fake(name, root)
    return root


def paths(split):
    return [p for p, _ in split.samples]


def test_imagenet_splits_labels_and_prompts(root):
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

    ds = ImageNet(root)
    assert ds.split_names() == ["train", "heldout_val", "train_full", "val"]
    train, held, full, val = (ds.split(s) for s in ds.split_names())
    assert (len(train), len(held), len(full), len(val)) == (8, 4, 12, 8)
    assert set(paths(train)).isdisjoint(paths(held)) and set(paths(train)) | set(paths(held)) == set(paths(full))
    assert sorted(set(val.targets)) == list(FAKE_CLASSES)  # label = index of the wnid among the sorted 1000
    assert paths(held) == paths(ImageNet(root).split("heldout_val"))  # seeded
    assert "seed 0" in ds.describe()["heldout"]
    assert ds.classnames == list(IMAGENET_CLASSNAMES)
    assert ds.templates == [t("{}") for t in OPENAI_IMAGENET_TEMPLATES] and len(ds.templates) == 80
    assert len(WNIDS) == 1000 and list(WNIDS) == sorted(WNIDS)


def test_imagenet_few_shot_draws_k_per_class_in_train_and_heldout(root):
    ds = ImageNet(root, shots=1, shot_seed=0)
    assert len(ds.split("train")) == 4 and len(ds.split("heldout_val")) == 4 and len(ds.split("val")) == 8
    assert ds.describe()["shots"] == 1


def test_full_label_space_shifts(root):
    v2, sketch = ImageNetV2(root).split("test"), ImageNetSketch(root).split("test")
    assert sorted(set(v2.targets)) == list(FAKE_CLASSES)  # V2 folders are class indices, not wnids
    assert all(int(p.parent.name) == y for p, y in v2.samples)
    assert sorted(set(sketch.targets)) == list(FAKE_CLASSES)
    assert ImageNetV2(root).project_logits(torch.ones(2, 1000)).shape == (2, 1000)


@pytest.mark.parametrize("cls, wnid_file", [(ImageNetR, "imagenet_r_wnids.txt"), (ImageNetA, "imagenet_a_wnids.txt")])
def test_200_class_subsets_predict_only_their_classes(root, cls, wnid_file):
    ds = cls(root)
    wnids = read_lines(wnid_file)
    split = ds.split("test")
    assert len(split) == 8 and all(wnids[y] == p.parent.name for p, y in split.samples)
    logits = torch.randn(len(split), 1000, generator=torch.Generator().manual_seed(0))
    logits[:, 0] = 100.0  # class 0 (tench) is in neither subset: it must never be predicted
    pred = ds.project_logits(logits).argmax(dim=1)
    assert pred.max() < 200
    assert all(WNIDS.index(wnids[int(k)]) != 0 for k in pred)
    # The projection keeps exactly the subset's 200 columns of the 1000, in the subset's order.
    assert torch.equal(ds.project_logits(logits), logits[:, [WNIDS.index(w) for w in wnids]])
    # The projected prediction is the best of the dataset's own 200 classes.
    best = [max(range(200), key=lambda j: logits[i, WNIDS.index(wnids[j])].item()) for i in range(len(split))]
    assert pred.tolist() == best


def test_sublists_match_the_reference_indices():
    r_idx = [WNIDS.index(w) for w in read_lines("imagenet_r_wnids.txt")]
    assert r_idx[:8] == [1, 2, 4, 6, 8, 9, 11, 13] and r_idx[-1] == 988 and len(r_idx) == 200
    a_idx = [WNIDS.index(w) for w in read_lines("imagenet_a_wnids.txt")]
    assert a_idx[:6] == [6, 11, 13, 15, 17, 22] and a_idx[-1] == 988 and len(a_idx) == 200


def test_objectnet_scores_113_classes_through_its_mapping(root):
    ds = ObjectNet(root)
    mapping = read_json("objectnet_classes.json")["classes"]
    assert len(mapping) == 113 and sum(len(v["imagenet"]) for v in mapping.values()) == 125
    split = ds.split("test")
    assert len(split) == 6 and sorted(set(split.targets)) == [0, 1, 2]  # the unmapped folder is not scored
    assert ds.classnames[:3] == ["alarm clock", "backpack", "banana"]
    logits = torch.zeros(2, 1000)
    logits[0, 530] = 5.0  # digital clock -> ObjectNet "Alarm clock" (folder alarm_clock, label 0)
    logits[1, 954] = 5.0  # banana -> label 2
    projected = ds.project_logits(logits)
    assert projected.shape == (2, 113) and projected.argmax(dim=1).tolist() == [0, 2]
    from bench.train.metrics import top1

    assert top1(projected, torch.tensor([0, 1])) == 0.5


def test_objectnet_crops_the_border_unless_asked_not_to(root):
    assert ObjectNet(root).split("test")[0][0].size == (20, 20)  # fake images are 24 px
    assert ObjectNet(root, border_crop=False).split("test")[0][0].size == (24, 24)


def test_evaluator_projects_and_averages_only_ood_sets(root):
    from torchvision.transforms import ToTensor

    from bench.train.evaluate import Evaluator
    from bench.spec.tasks import EvalSet

    sets = [EvalSet("val", "val", ImageNet(root), "heldout_val", "top1"),
            EvalSet("id", "imagenet", ImageNet(root), "val", "top1"),
            EvalSet("ood", "imagenet-r", ImageNetR(root), "test", "top1"),
            EvalSet("ood", "objectnet", ObjectNet(root), "test", "top1")]
    ev = Evaluator(sets, ToTensor(), batch_size=4, workers=0, device="cpu")

    def always_tench(x):  # ImageNet class 0, in neither subset
        out = torch.zeros(len(x), 1000)
        out[:, 0] = 1.0
        return out

    m = ev(always_tench)
    assert m["id/imagenet/top1"] == 0.0 and m["ood/imagenet-r/top1"] == 0.0
    assert m["ood/avg"] == pytest.approx((m["ood/imagenet-r/top1"] + m["ood/objectnet/top1"]) / 2)


def test_missing_dataset_names_path_layout_and_source(tmp_path):
    with pytest.raises(BenchError) as err:
        ImageNet(tmp_path)
    msg = str(err.value)
    assert "'imagenet'" in msg and str(tmp_path / "ILSVRC2012") in msg
    assert "ILSVRC2012/train/<wnid>" in msg and "image-net.org" in msg
    with pytest.raises(BenchError, match="imagenet-r.tar"):
        ImageNetR(tmp_path)


def test_root_defaults_to_bench_data(root, monkeypatch):
    monkeypatch.setenv("BENCH_DATA", str(root))
    assert ImageNetSketch().dir == root / "sketch"
    monkeypatch.delenv("BENCH_DATA")
    with pytest.raises(BenchError, match="BENCH_DATA"):
        ImageNetSketch()


def test_flat_val_and_stray_folders_are_layout_errors(tmp_path):
    (tmp_path / "ILSVRC2012" / "train" / WNIDS[0]).mkdir(parents=True)
    (tmp_path / "ILSVRC2012" / "val").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "ILSVRC2012" / "val" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(BenchError, match="no <wnid> class folders"):
        ImageNet(tmp_path)
    (tmp_path / "sketch" / "not_a_wnid").mkdir(parents=True)
    with pytest.raises(BenchError, match="not_a_wnid"):
        ImageNetSketch(tmp_path).split("test")


def test_truncated_or_corrupt_image_error_names_the_file(tmp_path):
    make_fake("imagenet-r", tmp_path)
    ds = ImageNetR(tmp_path)
    split = ds.split("test")
    bad = split.samples[1][0]
    bad.write_bytes(bad.read_bytes()[:40])  # truncated JPEG
    with pytest.raises(BenchError, match=bad.name):
        split[1]
    split.samples[2][0].write_bytes(b"not an image")
    with pytest.raises(BenchError, match=split.samples[2][0].name):
        split[2]


@pytest.mark.parametrize("mode, suffix", [("L", ".JPEG"), ("CMYK", ".JPEG"), ("RGBA", ".png"), ("P", ".png")])
def test_any_image_mode_loads_as_rgb(tmp_path, mode, suffix):
    folder = tmp_path / "sketch" / WNIDS[3]
    folder.mkdir(parents=True)
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).convert(mode).save(folder / f"x{suffix}")
    img, label = ImageNetSketch(tmp_path).split("test")[0]
    assert img.mode == "RGB" and label == 3
