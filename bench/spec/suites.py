"""Suites: YAML files shipped in bench/spec/suites/ naming tasks, methods, model, seeds and hyperparameters.

    name: toy
    model: {arch: toy-clip, pretrained: default}
    seeds: [0]
    methods: [zeroshot, lp, ft, lpft, flyp, wiseft]
    hparams: {epochs: 3, flyp.lr: 1e-4}          # every task; `method.key` scopes to one method
    tasks:
      toy-shift:
        dataset: toy-shift                          # or {name: folder, root: DIR, ...loader options}
        train: train                                # split names of the dataset
        val: id_val                                 # ID validation: model selection
        id: [id_test]                               # ID test sets
        ood: [v2, sketch, {split: x, dataset: other, name: shown-name, metric: macro_f1}]
        metric: top1                                # default metric of every set of the task
        hparams: {lr: 3e-4}
        templates: ["a photo of a {}."]             # optional: prompt templates instead of the dataset's
"""
from __future__ import annotations

from pathlib import Path

from bench.config import check_alphas, check_layer, expect
from bench.datasets.base import check_templates
from bench.errors import BenchError, unknown_name

SUITE_DIR = Path(__file__).parent / "suites"
SUITE_KEYS = {"name", "description", "experiment", "model", "seeds", "methods", "hparams", "tasks", "wiseft",
              "resources"}  # resources: {cpu: N, gpu: M} per Ray trial (bench sweep/run --executor ray)
TASK_KEYS = {"dataset", "train", "val", "id", "ood", "metric", "hparams", "description", "templates"}
MODEL_KEYS = {"arch", "pretrained"}
SET_KEYS = {"split", "dataset", "name", "metric"}
# The WiSE-FT paper's grid, 0, 0.1, ..., 1. Alpha 0 (the zero-shot model) and 1 (the finetuned one) are the
# curve's endpoints; the report picks a row's alpha on ID validation and never reports alpha 0 as WiSE-FT.
DEFAULT_ALPHAS = [round(0.1 * i, 1) for i in range(11)]


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))


def load_suite(name: str) -> dict:
    path = SUITE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise unknown_name("suite", name, suite_names())
    return validate_suite(load_yaml(path), str(path))


def load_yaml(path: Path) -> dict:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise BenchError(f"Config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise BenchError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise BenchError(f"{path} must hold a YAML mapping at the top level.")
    return data


def _check_keys(data: dict, allowed: set, where: str) -> None:
    extra = sorted(str(k) for k in data if k not in allowed)
    if extra:
        raise BenchError(f"{where}: unknown key(s) {extra}; allowed keys: {sorted(allowed)}.")


def check_model(model, where: str) -> dict:
    """`model: {arch: ViT-B-16, pretrained: openai}`: a mapping, never a bare string."""
    expect(model, dict, where, "{arch: ViT-B-16, pretrained: openai}")
    _check_keys(model, MODEL_KEYS, where)
    if "arch" in model:
        expect(model["arch"], str, f"{where}: arch", "ViT-B-16")
    if "pretrained" in model:
        expect(model["pretrained"], (str, type(None)), f"{where}: pretrained", "openai")
    return model


def validate_suite(suite: dict, where: str) -> dict:
    _check_keys(suite, SUITE_KEYS, where)
    if not isinstance(suite.get("tasks"), dict) or not suite["tasks"]:
        raise BenchError(f"{where}: 'tasks' must map task names to task definitions.")
    suite.setdefault("name", Path(where).stem)
    suite.setdefault("seeds", [0])
    suite["hparams"] = check_layer(suite.get("hparams"), f"{where}: hparams")
    if "model" in suite:
        check_model(suite["model"], f"{where}: model")
    if "methods" in suite:
        expect(suite["methods"], list, f"{where}: methods", "[zeroshot, ft, flyp]")
    wiseft = suite.setdefault("wiseft", {})
    expect(wiseft, dict, f"{where}: wiseft", "{alphas: [0, 0.5, 1], bases: [ft, flyp]}")
    _check_keys(wiseft, {"alphas", "bases"}, f"{where}: wiseft")
    wiseft["alphas"] = check_alphas(wiseft.get("alphas", DEFAULT_ALPHAS), f"{where}: wiseft.alphas")
    if "bases" in wiseft:
        expect(wiseft["bases"], list, f"{where}: wiseft.bases", "[ft, flyp]")
    for task_name, task in suite["tasks"].items():
        suite["tasks"][task_name] = normalise_task(task, f"{where}: task '{task_name}'")
    return suite


def normalise_task(task: dict, where: str) -> dict:
    expect(task, dict, where, "{dataset: toy-shift, train: train, val: id_val, id: [id_test]}")
    _check_keys(task, TASK_KEYS, where)
    for key in ("dataset", "train", "val"):
        if key not in task:
            raise BenchError(f"{where} needs '{key}'.")
    task["dataset"] = _dataset(task["dataset"], f"{where}: dataset")
    expect(task["train"], str, f"{where}: train", "train")
    task.setdefault("metric", "top1")
    expect(task["metric"], str, f"{where}: metric", "top1")
    task["hparams"] = check_layer(task.get("hparams"), f"{where}: hparams")
    if "templates" in task:  # absent stays absent: the key is part of each job's run_key
        task["templates"] = check_templates(expect(task["templates"], list, f"{where}: templates", '["a photo of a {}."]'),
                                            f"{where}: templates")
    task["val"] = _eval_set(task["val"], task, where)
    for role in ("id", "ood"):
        entries = task.get(role) or []
        task[role] = [_eval_set(e, task, where) for e in (entries if isinstance(entries, list) else [entries])]
    return task


def _dataset(value, where: str) -> dict:
    """`dataset: name` or `dataset: {name: folder, root: DIR, ...loader options}`."""
    expect(value, (str, dict), where, "toy-shift or {name: folder, root: DIR}")
    spec = {"name": value} if isinstance(value, str) else dict(value)
    if "name" not in spec:
        raise BenchError(f"{where} needs a 'name'.")
    expect(spec["name"], str, f"{where}: name", "toy-shift")
    for key in spec:
        expect(key, str, f"{where}: option name", "root")
    return spec


def _eval_set(entry, task: dict, where: str) -> dict:
    expect(entry, (str, dict), f"{where}: eval set", "id_test or {split: test, name: shown-name}")
    entry = {"split": entry} if isinstance(entry, str) else dict(entry)
    _check_keys(entry, SET_KEYS, f"{where}, eval set {entry}")
    if "split" not in entry:
        raise BenchError(f"{where}: eval set {entry} needs a 'split'.")
    for key in ("split", "name", "metric"):
        if key in entry:
            expect(entry[key], str, f"{where}: eval set {key}", "test")
    if "dataset" in entry:
        entry["dataset"] = _dataset(entry["dataset"], f"{where}: eval set dataset")
        entry.setdefault("name", entry["dataset"]["name"])
    else:
        entry["dataset"] = dict(task["dataset"])
        entry.setdefault("name", entry["split"])
    entry.setdefault("metric", task["metric"])
    return entry


def folder_task(root: str) -> tuple[str, dict]:
    """An ad-hoc task for `bench run --folder DIR`: train/val/test splits, every other split is OOD."""
    from bench.datasets.folder import FolderDataset

    ds = FolderDataset(root)
    splits = [s for s in ds.split_names() if s not in ("train", "val", "test")]
    if "test" not in ds.split_names():
        raise BenchError(f"Folder dataset {ds.root} needs a 'test' split for ID evaluation.")
    task = {"dataset": {"name": "folder", "root": str(ds.root)}, "train": "train", "val": "val",
            "id": ["test"], "ood": splits}
    return ds.root.name, normalise_task(task, f"--folder {root}")
