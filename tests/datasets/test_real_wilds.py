"""iWildCam and FMoW on fake trees through wilds.get_dataset(download=False) and the datasets' own eval."""
import subprocess
import sys

import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score

from bench.datasets.fake_real import FMOW_ROWS, IWILDCAM_ROWS, make_fake
from bench.datasets.wilds_ds import FMoW, IWildCam
from bench.errors import BenchError


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_fake("iwildcam", root)
    make_fake("fmow", root)
    return root


@pytest.fixture(scope="module")
def iwildcam(root):
    return IWildCam(root)


@pytest.fixture(scope="module")
def fmow(root):
    return FMoW(root)


def one_hot(pred, n):
    return torch.nn.functional.one_hot(torch.tensor(pred), n).float()


def batch(source, split):
    data = source.split(split)
    items = [data[i] for i in range(len(data))]
    return torch.tensor([y for _, y, _ in items]), torch.stack([m for _, _, m in items])


def test_goes_through_wilds_get_dataset_without_download(root, monkeypatch):
    import wilds

    calls = []
    real = wilds.get_dataset
    monkeypatch.setattr(wilds, "get_dataset", lambda **kw: calls.append(kw) or real(**kw))
    IWildCam(root)
    assert calls == [{"dataset": "iwildcam", "version": "2.0", "root_dir": str(root.resolve()), "download": False}]


def test_iwildcam_official_splits_and_names(iwildcam):
    sizes = {s: len(iwildcam.split(s)) for s in iwildcam.split_names()}
    expected = {s: sum(r[0] == s for r in IWILDCAM_ROWS) for s in ("train", "val", "test", "id_val", "id_test")}
    assert sizes == expected == iwildcam.split_sizes()
    img, y, meta = iwildcam.split("id_test")[0]
    assert img.mode == "RGB" and y == 0 and meta.shape == (len(iwildcam.ds.metadata_fields),)
    assert len(iwildcam.classnames) == 182 and iwildcam.classnames[:2] == ["empty", "white-lipped peccary"]
    assert iwildcam.templates == ["a photo of {}.", "{} in the wild."]
    assert iwildcam.problems() == [] and iwildcam.describe()["version"] == "2.0"


def test_iwildcam_macro_f1_over_present_labels(iwildcam):
    labels, meta = batch(iwildcam, "id_test")  # labels 0, 2, 1
    pred = [0, 0, 1]
    m = iwildcam.official_metrics("id_test", one_hot(pred, 182), labels, meta)
    assert m["acc_avg"] == pytest.approx(2 / 3)
    assert m["F1-macro_all"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert m["F1-macro_all"] == pytest.approx(f1_score(labels, pred, labels=[0, 1, 2], average="macro"))
    from bench.train.metrics import macro_f1

    assert macro_f1(one_hot(pred, 182), labels) == pytest.approx(m["F1-macro_all"])  # suite's val metric agrees


def test_fmow_official_splits_names_and_templates(fmow):
    from wilds.datasets.fmow_dataset import categories

    sizes = {s: len(fmow.split(s)) for s in fmow.split_names()}
    assert sizes == {"train": 4, "id_val": 2, "id_test": 2, "val": 2, "test": 3}  # the 'seq' row is excluded
    assert sum(sizes.values()) == len(FMOW_ROWS) - 1
    assert fmow.classnames == categories and len(fmow.classnames) == 62
    assert len(fmow.templates) == 16
    assert [t.format("airport_hangar") for t in fmow.templates[:4]] == [
        "satellite photo of a airport_hangar.", "aerial photo of a airport_hangar.",
        "satellite photo of an airport hangar.", "aerial photo of an airport hangar."]
    assert fmow.templates[2].format("barn") == "satellite photo of a barn."


def test_fmow_worst_region_excludes_other(fmow):
    labels, meta = batch(fmow, "test")  # USA (Americas) y1, KEN (Africa) y2, ATA (Other) y0
    m = fmow.official_metrics("test", one_hot([1, 2, 1], 62), labels, meta)
    assert m["acc_avg"] == pytest.approx(2 / 3)
    assert m["acc_worst_region"] == 1.0  # the wrong prediction is in "Other", which is not a region
    m = fmow.official_metrics("test", one_hot([1, 0, 0], 62), labels, meta)
    assert m["acc_worst_region"] == 0.0 and m["acc_avg"] == pytest.approx(2 / 3)
    assert set(m) >= {"acc_avg", "acc_worst_year", "acc_worst_region"}


def test_evaluator_reads_official_metrics(iwildcam, fmow):
    from torchvision.transforms import ToTensor

    from bench.train.evaluate import Evaluator
    from bench.spec.tasks import EvalSet

    sets = [EvalSet("val", "val", iwildcam, "id_val", "macro_f1"),
            EvalSet("ood", "iwildcam-ood", iwildcam, "test", "F1-macro_all"),
            EvalSet("ood", "fmow-ood", fmow, "test", "acc_worst_region")]
    m = Evaluator(sets, ToTensor(), batch_size=2, workers=0, device="cpu")(lambda x: one_hot([0] * len(x), 182))
    assert m["ood/iwildcam-ood/F1-macro_all"] == pytest.approx((0.5 + 0 + 0) / 3)  # always 'empty'; labels 0, 1, 2
    assert m["ood/fmow-ood/acc_worst_region"] == 0.0
    assert m["val/macro_f1"] == pytest.approx(1 / 3)  # labels 0, 1: F1 2/3 and 0


def test_fmow_needs_both_patches():
    from bench.datasets import wilds_patches
    from wilds.common import utils
    from wilds.common.metrics import metric
    from wilds.datasets import fmow_dataset

    with pytest.raises(ImportError):
        import torch_scatter  # noqa: F401
    assert utils.avg_over_groups is metric.avg_over_groups is wilds_patches.avg_over_groups
    avg, counts = utils.avg_over_groups(torch.tensor([1.0, 0.0, 1.0, 1.0]), torch.tensor([0, 0, 2, 2]), 3)
    assert avg.tolist() == [0.5, 0.0, 1.0] and counts.tolist() == [2, 0, 2]
    stamps = pd.Series([r[1] for r in FMOW_ROWS])
    assert any(".643Z" in s for s in stamps)
    if int(pd.__version__.split(".")[0]) >= 2:
        with pytest.raises(ValueError):
            pd.to_datetime(stamps)  # what wilds would call without the patch
    parsed = fmow_dataset.pd.to_datetime(stamps)
    assert parsed.iloc[2].microsecond == 643000 and str(parsed.dt.tz) == "UTC"


def test_import_wilds_starts_no_version_check_thread():
    code = ("import threading; from bench.datasets.wilds_patches import import_wilds; import_wilds(); "
            "import sys; print(len([t for t in threading.enumerate() if not t.daemon]), "
            "sys.modules.get('outdated', 'absent') is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "True"]


def test_missing_or_incomplete_copy_is_one_clear_error(tmp_path):
    with pytest.raises(BenchError) as err:
        IWildCam(tmp_path)
    msg = str(err.value)
    assert "'iwildcam'" in msg and str(tmp_path / "iwildcam_v2.0") in msg and "wilds.stanford.edu" in msg
    assert "metadata.csv" in msg
    make_fake("fmow", tmp_path)
    (tmp_path / "fmow_v1.1" / "RELEASE_v1.1.txt").unlink()
    with pytest.raises(BenchError, match="RELEASE_v1.1.txt"):
        FMoW(tmp_path)


def test_bad_metadata_and_unreadable_image(tmp_path):
    make_fake("iwildcam", tmp_path)
    meta = tmp_path / "iwildcam_v2.0" / "metadata.csv"
    text = meta.read_text()
    meta.write_text(text.replace("split,", "part,", 1))
    with pytest.raises(BenchError, match="wilds could not read it"):
        IWildCam(tmp_path)
    meta.write_text(text)
    ds = IWildCam(tmp_path)
    split = ds.split("train")
    path = ds.image_path(split.indices[0])
    path.write_bytes(b"\xff\xd8\xff broken")
    with pytest.raises(BenchError, match=path.name):
        split[0]
    path.unlink()
    assert "absent" in ds.problems()[0]
