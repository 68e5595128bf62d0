"""Transfer datasets on fake copies of their official downloads, FLYP's folder layout, and few-shot sampling."""
import pytest
from PIL import Image

from bench.datasets.fake_real import make_fake
from bench.datasets.prompts import read_lines
from bench.datasets.transfer import Caltech101, EuroSAT, Flowers102, PatchCamelyon, RenderedSST2, StanfordCars
from bench.errors import BenchError

ALL = {"caltech101": Caltech101, "stanfordcars": StanfordCars, "flowers102": Flowers102, "pcam": PatchCamelyon,
       "sst2": RenderedSST2, "eurosat": EuroSAT}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for name in ALL:
        make_fake(name, root)
    return root


def paths(split):
    return [p for p, _ in split.samples]


@pytest.mark.parametrize("name, n_classes, n_templates, sizes", [
    ("caltech101", 101, 34, (9, 3, 3)), ("stanfordcars", 196, 8, (8, 2, 4)), ("flowers102", 102, 1, (6, 3, 3)),
    ("pcam", 2, 1, (6, 6, 6)), ("sst2", 2, 1, (6, 6, 6)), ("eurosat", 10, 3, (9, 3, 3))])
def test_splits_classes_and_templates(root, name, n_classes, n_templates, sizes):
    ds = ALL[name](root)
    assert ds.split_names() == ["train", "val", "test"]
    assert tuple(len(ds.split(s)) for s in ds.split_names()) == sizes
    assert len(ds.classnames) == n_classes and len(ds.templates) == n_templates
    assert all("{}" in t for t in ds.templates) and ds.problems() == []
    img, _ = ds.split("test")[0]
    assert img.mode == "RGB"


def test_caltech_excludes_background_and_splits_with_a_recorded_seed(root):
    ds = Caltech101(root)
    assert ds.classnames[:4] == ["off-center face", "centered face", "leopard", "motorbike"]
    every = [p for s in ds.split_names() for p in paths(ds.split(s))]
    assert len(every) == len(set(every)) == 15 and not any("BACKGROUND" in str(p) for p in every)
    assert {y for s in ds.split_names() for y in ds.split(s).targets} == {0, 1, 2}  # Faces, Faces_easy, Leopards
    assert paths(Caltech101(root).split("val")) == paths(ds.split("val"))
    assert paths(Caltech101(root, split_seed=3).split("val")) != paths(ds.split("val"))
    assert ds.describe()["split"] == "seeded stratified 60/20/20, seed 0"


def test_cars_reproduces_flyps_split_and_names(root):
    from sklearn.model_selection import train_test_split

    ds = StanfordCars(root)
    files = [f"{i + 1:05d}.jpg" for i in range(10)]
    _, val_files, _, _ = train_test_split(files, [1 + i % 3 for i in range(10)], test_size=0.2, random_state=10)
    assert [p.name for p in paths(ds.split("val"))] == val_files
    assert ds.classnames[0] == "AM General Hummer SUV 2000" and "Ram C-V Cargo Van Minivan 2012" in ds.classnames
    assert sorted(set(ds.split("test").targets)) == [0, 1, 2]
    assert "random_state=10" in ds.describe()["split"]


def test_flowers_maps_official_labels_to_flyp_order(root):
    ds = Flowers102(root)
    assert read_lines("flowers102_official_order.txt")[0] == "pink primrose"
    first = ds.split("train").samples[0]  # image_00001, official label 1
    assert first[0].name == "image_00001.jpg" and ds.classnames[first[1]] == "pink primrose"
    assert ds.classnames == sorted(ds.classnames, key=lambda c: c.replace(" ", "_"))


def test_sst2_accepts_the_official_valid_folder(root):
    ds = RenderedSST2(root)
    assert ds.dir.name == "rendered-sst2" and ds.prepared["val"].name == "valid"
    assert ds.classnames == ["negative", "positive"] and ds.templates == ["a {} review of a movie."]


def test_flyp_folder_layout(tmp_path):
    for split in ("train", "val", "test"):
        for name in ("Acura_RL_Sedan_2012", "Ram_C-V_Cargo_Van_Minivan_2012"):
            (tmp_path / "StanfordCars" / split / name).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / "StanfordCars" / split / name / "a.jpg")
    ds = StanfordCars(tmp_path)
    assert ds.layout == "folders"
    names = [ds.classnames[y] for y in ds.split("train").targets]
    assert names == ["Acura RL Sedan 2012", "Ram C-V Cargo Van Minivan 2012"]
    assert "194 of the 196 class folders are absent" in ds.problems()[0]


def test_few_shot_draws_k_per_class_in_train_and_val_only(root):
    ds = RenderedSST2(root, shots=2, shot_seed=1)
    train, val, test = (ds.split(s) for s in ("train", "val", "test"))
    assert len(train) == len(val) == 4 and len(test) == 6
    assert sorted(train.targets) == sorted(val.targets) == [0, 0, 1, 1]
    assert paths(RenderedSST2(root, shots=2, shot_seed=1).split("train")) == paths(train)
    draws = {tuple(paths(RenderedSST2(root, shots=2, shot_seed=s).split("train"))) for s in range(6)}
    assert len(draws) > 1
    assert ds.describe()["few_shot"] == "2 per class in train and val, seed 1"
    with pytest.raises(BenchError, match="shots"):
        RenderedSST2(root, shots=0)


def test_missing_or_unconverted_data(tmp_path):
    with pytest.raises(BenchError) as err:
        Flowers102(tmp_path)
    assert "flowers102/jpg" in str(err.value) and "robots.ox.ac.uk" in str(err.value)
    (tmp_path / "patchcamelyon").mkdir()
    (tmp_path / "patchcamelyon" / "camelyonpatch_level_2_split_test_x.h5").write_bytes(b"")
    with pytest.raises(BenchError, match="convert them first"):
        PatchCamelyon(tmp_path)
