"""The catalogue of bad inputs: each is refused before any work with one `bench: error:` (or one BenchError),
no traceback, and nothing recorded in MLflow. Pretrained-checkpoint files and lifecycle faults have their own
tests (test_model_resolution.py, the lifecycle tests)."""
import shutil
import sqlite3

import pytest
import torch

from bench.cli.main import main
from bench.datasets.fake import make_folder_tree
from bench.errors import BenchError

TINY = ["--model", "bench-tiny", "--pretrained", "none", "--workers", "0"]


def mlflow_runs(home) -> int:
    db = home / "mlflow.db"
    if not db.is_file():
        return 0
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError:  # no tables yet: never migrated, so never written
        return 0
    finally:
        con.close()


def refused(args, capsys, home, expected):
    code = main(["run"] + args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("bench: error:") == 1 and "Traceback" not in err
    assert expected in err, err
    assert mlflow_runs(home) == 0 and not (home / "jobs").exists()


# --set KEY=VALUE on the tiny folder task: (methods, value, expected words in the error)
SETS = [
    ("ft", "epochs=0", "'epochs' must be >= 1"),
    ("ft", "epochs=-1", "'epochs' must be >= 1"),
    ("ft", "epochs=1.5", "'epochs' expects int"),
    ("ft", "batch_size=0", "'batch_size' must be >= 1"),
    ("ft", "lr=-1", "'lr' must be > 0"),
    ("ft", "lr=0", "'lr' must be > 0"),
    ("ft", "lr=nan", "'lr' must be a finite number"),
    ("ft", "lr=inf", "'lr' must be a finite number"),
    ("ft", "lr=1e400", "'lr' must be a finite number"),
    ("ft", "wd=-0.5", "'wd' must be >= 0"),
    ("ft", "warmup=-1", "'warmup' must be >= 0"),
    ("ft", "grad_clip=-1", "'grad_clip' must be >= 0"),
    ("ft", "ft.grad_clip=nan", "'ft.grad_clip' must be a finite number"),
    ("ft", "label_smoothing=1.5", "'label_smoothing' must be in [0, 1)"),
    ("l2sp", "l2sp_weight=-0.1", "'l2sp_weight' must be >= 0"),
    ("flyp", "logit_scale_max=0.5", "'logit_scale_max' must be 0 (no clamp) or > 1"),
    ("flyp", "flyp.mask_same_class=maybe", "expects bool"),
    ("lp", "lp_c_grid=[]", "'lp_c_grid' must be a non-empty list"),
    ("lp", "lp_c_grid=[0, 1]", "'lp_c_grid' must be a non-empty list of positive"),
    ("lp", "lp_c_grid=1", "'lp_c_grid' expects list"),
    ("ft", "ft.selection=worst", "must be one of ('best', 'last', 'min_val_loss')"),
    ("ft", "lr=", "'lr' expects float"),
]


@pytest.mark.parametrize("methods,item,expected", SETS, ids=[s[1] for s in SETS])
def test_out_of_range_hyperparameters(bench_home, folder_root, capsys, methods, item, expected):
    refused(["--folder", str(folder_root), "--methods", methods, "--set", item] + TINY, capsys, bench_home, expected)


ARGS = [
    (["--workers", "-1"], "--workers must be an integer >= 0"),
    (["--eval-batch-size", "0"], "--eval-batch-size must be an integer >= 1"),
    (["--gpus", "0"], "--gpus must be an integer >= 1"),
    (["--gpus", "999"], "--gpus 999 asks for 999 GPUs"),
    (["--micro-batch", "-1"], "--micro-batch must be an integer >= 0"),
    (["--device", "gpu9"], "Unknown --device 'gpu9'"),
    (["--device", "meta"], "--device 'meta' is not supported"),
    (["--device", "cuda:99"], "cuda"),
    (["--seeds", "-1"], "non-negative integers"),
    (["--seeds", "0,0"], "each seed once"),
    (["--seeds", "a"], "non-negative integers"),
    (["--methods", "ft,ft"], "'ft' is listed twice"),
]


@pytest.mark.parametrize("args,expected", ARGS, ids=[" ".join(a[0]) for a in ARGS])
def test_bad_runtime_and_selection_options(bench_home, folder_root, capsys, args, expected):
    refused(["--folder", str(folder_root), "--methods", "ft"] + TINY + args, capsys, bench_home, expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_device_without_cuda(bench_home, folder_root, capsys):
    refused(["--folder", str(folder_root), "--methods", "ft", "--device", "cuda"] + TINY, capsys, bench_home,
            "CUDA is not available on this machine")


CONFIGS = [
    ("hparams: 3\n", "'hparams' must be a mapping"),
    ("hparams: [1, 2]\n", "'hparams' must be a mapping"),
    ("hparams: {3: 1}\n", "hyperparameter names must be strings"),
    ("hparams: {lr: [1]}\n", "'lr' expects float"),
    ("hparams: {epochs: 0}\n", "'epochs' must be >= 1"),
    ("model: toy-clip\n", "'model' must be a mapping"),
    ("model: {arch: 3}\n", "arch must be a string"),
    ("model: {arch: bench-tiny, weights: x}\n", "unknown key(s) ['weights']"),
    ("tasks: {a: 1}\n", "'tasks' must be a string or a list"),
    ("methods: 3\n", "'methods' must be a string or a list"),
    ("methods: [[ft]]\n", "methods: entry must be"),
    ("tasks: [shapes, shapes]\n", "listed twice"),
    ("seeds: {a: 1}\n", "'seeds' must be"),
    ("seeds: 1.5\n", "'seeds' must be"),
    ("seeds: [0, 0]\n", "each seed once"),
    ("experiment: [1]\n", "'experiment' must be a string"),
    ("experiment: '  '\n", "'experiment' must be a non-empty name"),
    ("pretrained: [1]\n", "'pretrained' must be a string"),
    ("suite: 3\n", "'suite' must be a string"),
    ("wiseft_alphas: [0, 1.5]\n", "every WiSE-FT alpha must be a number in [0, 1]"),
    ("wiseft_alphas: [-0.1]\n", "every WiSE-FT alpha must be a number in [0, 1]"),
    ("wiseft_alphas: [a]\n", "every WiSE-FT alpha must be a number in [0, 1]"),
    ("wiseft_alphas: 0.5\n", "'wiseft_alphas' must be a list"),
    ("wiseft_alphas: []\n", "must be a non-empty list of WiSE-FT alphas"),
    ("- just\n- a list\n", "must hold a YAML mapping"),
    ("hparams: {lr: [\n", "is not valid YAML"),
    ("3: x\n", "unknown key(s) ['3']"),
]


@pytest.mark.parametrize("text,expected", CONFIGS, ids=[c[0].strip() for c in CONFIGS])
def test_bad_config_files(bench_home, folder_root, tmp_path, capsys, text, expected):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    refused(["--folder", str(folder_root), "--methods", "ft", "--config", str(cfg)] + TINY, capsys, bench_home, expected)


def _two_braces(root):
    (root / "templates.txt").write_text("a photo of a {}.\na {} of a {}.\n")


def _stray_brace(root):
    (root / "templates.txt").write_text("a photo of a {}.\na photo of a {.\n")


def _named_field(root):
    (root / "templates.txt").write_text("a {kind} of a {}.\n")


def _no_placeholder(root):
    (root / "templates.txt").write_text("a photo.\n")


def _empty_train_class(root):
    for p in (root / "train" / "class_01").iterdir():
        p.unlink()


def _class_missing_from_test(root):
    shutil.rmtree(root / "test" / "class_02")


def _class_missing_from_ood(root):
    shutil.rmtree(root / "ood" / "class_00")


def _empty_val_class(root):
    for p in (root / "val" / "class_01").iterdir():
        p.unlink()


def _too_few_to_carve_val(root):
    shutil.rmtree(root / "val")
    for p in sorted((root / "train" / "class_00").iterdir())[1:]:
        p.unlink()


def _only_non_images(root):
    for p in (root / "train" / "class_01").iterdir():
        p.unlink()
    (root / "train" / "class_01" / "notes.txt").write_text("no images here")


def _duplicate_classnames(root):
    (root / "classnames.txt").write_text("cat\ndog\ncat\n")


FOLDERS = [
    (_two_braces, "needs a '{}' for the class name, exactly once"),
    (_stray_brace, "needs a '{}' for the class name, exactly once"),
    (_named_field, "needs a '{}' for the class name, exactly once"),
    (_no_placeholder, "needs a '{}' for the class name, exactly once"),
    (_empty_train_class, "split 'train' has no images of class folder(s) ['class_01']"),
    (_class_missing_from_test, "split 'test' has no images of class folder(s) ['class_02']"),
    (_class_missing_from_ood, "split 'ood' has no images of class folder(s) ['class_00']"),
    (_empty_val_class, "split 'val' has no images of class folder(s) ['class_01']"),
    (_too_few_to_carve_val, "too few to hold one out for validation"),
    (_only_non_images, "split 'train' has no images of class folder(s) ['class_01']"),
    (_duplicate_classnames, "lists the class name 'cat' more than once"),
]


@pytest.mark.parametrize("damage,expected", FOLDERS, ids=[f[0].__name__.strip("_") for f in FOLDERS])
def test_bad_folder_datasets(bench_home, tmp_path, capsys, damage, expected):
    root = make_folder_tree(tmp_path / "data", n_classes=3, per_split={"train": 3, "val": 1, "test": 1, "ood": 1})
    damage(root)
    refused(["--folder", str(root), "--methods", "ft"] + TINY, capsys, bench_home, expected)


# Suite-level entries (suites are shipped, so these are checked where a suite is validated).
SUITES = [
    ({"wiseft": {"alphas": [0, 2]}}, "every WiSE-FT alpha must be a number in [0, 1]"),
    ({"wiseft": {"alphas": 0.5}}, "must be a non-empty list of WiSE-FT alphas"),
    ({"wiseft": [0.5]}, "wiseft must be a mapping"),
    ({"hparams": [1]}, "hparams must be a mapping"),
    ({"model": "ViT-B-16"}, "model must be a mapping"),
    ({"methods": "ft"}, "methods must be a list"),
    ({"tasks": {"t": {"dataset": "toy-shift", "train": "train", "val": "id_val", "templates": ["a {} {}."]}}},
     "needs a '{}' for the class name, exactly once"),
    ({"tasks": {"t": {"dataset": "toy-shift", "train": "train", "val": "id_val", "templates": "a {}."}}},
     "templates must be a list"),
    ({"tasks": {"t": {"dataset": "toy-shift", "train": "train", "val": "id_val", "hparams": 3}}},
     "hparams must be a mapping"),
    ({"tasks": {"t": {"dataset": 3, "train": "train", "val": "id_val"}}}, "dataset must be a string or a mapping"),
    ({"tasks": {"t": {"dataset": "toy-shift", "train": "train", "val": "id_val", "ood": [3]}}},
     "eval set must be a string or a mapping"),
    ({"tasks": {"t": [1]}}, "must be a mapping"),
]


@pytest.mark.parametrize("entry,expected", SUITES, ids=[str(s[0])[:60] for s in SUITES])
def test_bad_suite_entries(entry, expected):
    from bench.spec.suites import validate_suite

    suite = {"name": "s", "tasks": {"t": {"dataset": "toy-shift", "train": "train", "val": "id_val"}}, **entry}
    with pytest.raises(BenchError, match=None) as err:
        validate_suite(suite, "s.yaml")
    assert expected in str(err.value)


def test_unknown_dataset_option():
    from bench.spec.tasks import dataset_source

    with pytest.raises(BenchError, match="Unknown option of dataset 'folder' 'roots'. Did you mean 'root'"):
        dataset_source({"name": "folder", "roots": "/x"})


@pytest.mark.parametrize("shots", [4, 9])
def test_k_shot_larger_than_the_smallest_class(tmp_path, monkeypatch, shots):
    from bench.datasets.fake_real import make_fake
    from bench.spec.suites import normalise_task
    from bench.spec.tasks import build_task

    make_fake("sst2", tmp_path)  # 3 images per class in train and val
    monkeypatch.setenv("BENCH_DATA", str(tmp_path))
    task = normalise_task({"dataset": {"name": "sst2", "shots": shots}, "train": "train", "val": "val",
                           "id": ["test"]}, "task")
    with pytest.raises(BenchError, match=f"shots={shots} but class '.*' has only 3 image"):
        build_task("sst2-kshot", task)
    ok = normalise_task({"dataset": {"name": "sst2", "shots": 3}, "train": "train", "val": "val", "id": ["test"]}, "t")
    assert len(build_task("sst2-3shot", ok).source.split("train")) == 6


# Environment checks the launcher runs before any job (bench/launch/preflight.py).
def test_bench_home_that_is_a_file(tmp_path):
    from bench.launch.preflight import check_home

    home = tmp_path / "home"
    home.write_text("")
    with pytest.raises(BenchError, match="is a file, not a directory"):
        check_home(home)
    with pytest.raises(BenchError, match="cannot be created"):
        check_home(home / "sub")


def test_bench_home_that_is_read_only(tmp_path, monkeypatch):
    import bench.launch.preflight as preflight

    home = tmp_path / "home"
    home.mkdir()
    assert preflight.check_home(home) == home and list(home.iterdir()) == []  # the probe leaves nothing
    home.chmod(0o555)

    def refuse(*a, **k):  # root ignores permission bits; a read-only mount refuses everyone like this
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(preflight.tempfile, "mkstemp", refuse)
    try:
        with pytest.raises(BenchError, match="is not writable .*Set BENCH_HOME to a writable directory"):
            preflight.check_home(home)
    finally:
        home.chmod(0o755)


@pytest.mark.parametrize("uri,expected", [
    ("foo://x", "unknown scheme 'foo'"),
    ("sqlit:///x.db", "Did you mean 'sqlite'"),
    ("file:///tmp/mlruns", "file store"),
    ("/tmp/mlruns", "file store"),
])
def test_unknown_or_refused_tracking_uri(uri, expected):
    from bench.launch.preflight import check_tracking_uri

    with pytest.raises(BenchError, match=expected) as err:
        check_tracking_uri(uri)
    assert "sqlite" in str(err.value)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "directory", "no parent"])
def test_unreadable_mlflow_store(tmp_path, mlflow_template, damage):
    from bench.launch.preflight import check_tracking_uri

    db = tmp_path / "mlflow.db"
    if damage == "garbage":
        db.write_bytes(b"this is not a database" * 100)
    elif damage == "truncated":
        data = mlflow_template.read_bytes()
        db.write_bytes(data[: len(data) // 3])
    elif damage == "directory":
        db.mkdir()
    else:
        db = tmp_path / "missing" / "mlflow.db"
    with pytest.raises(BenchError, match="mv .*mlflow.db|does not exist"):
        check_tracking_uri(f"sqlite:///{db}")
    assert not (tmp_path / "missing").exists()


def test_good_stores_pass(tmp_path, mlflow_template):
    from bench.launch.preflight import check_tracking_uri

    check_tracking_uri(f"sqlite:///{mlflow_template}")
    check_tracking_uri(f"sqlite:///{tmp_path / 'new.db'}")  # absent: MLflow creates it
    check_tracking_uri("http://localhost:5000")
    check_tracking_uri("postgresql+psycopg2://u@h/db")
    assert list(tmp_path.iterdir()) == []


def test_too_little_free_disk(tmp_path):
    from bench.runtime.disk import check_free_disk, checkpoint_need_bytes

    check_free_disk(tmp_path / "jobs" / "x", 1)
    with pytest.raises(BenchError, match=r"need about 1024\.0 TB, .* free on"):
        check_free_disk(tmp_path / "jobs" / "x", 1024 ** 5)
    model = torch.nn.Linear(10, 10)  # 110 float32 parameters
    assert checkpoint_need_bytes(model) == 110 * 4 * 10


def test_good_runtime_passes():
    from bench.train.options import check_runtime

    assert check_runtime({"workers": 0, "eval_batch_size": 1, "device": "cpu"})["device"] == "cpu"
    check_runtime({"workers": 2, "eval_batch_size": 64, "device": "cuda:7"}, local=False)  # Ray: checked on the node
    with pytest.raises(BenchError, match="Unknown --device"):
        check_runtime({"device": "gpu9"}, local=False)
