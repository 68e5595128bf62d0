"""Sweep spaces: validation errors, the deterministic sampler (a seeded property loop; hypothesis is not
installed), and the bundled spaces."""
import math
import random

import pytest
import yaml

from bench.config import method_defaults
from bench.errors import BenchError
from bench.methods import METHODS
from bench.sweeps.space import DISTRIBUTIONS, load_space, space_names

FT = method_defaults(METHODS.get("ft"))


def write(tmp_path, data, name="space.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def test_bundled_spaces_load_for_every_training_method_and_suite_task():
    from bench.spec.suites import load_suite, suite_names

    assert {"default", "flyp", "l2sp"} <= set(space_names())
    tasks = [t for s in suite_names() for t in load_suite(s)["tasks"]]
    for method in ("ft", "lpft", "flyp", "l2sp", "flyp-ce"):
        defaults = method_defaults(METHODS.get(method))
        for task in tasks:
            space = load_space(None, method, task, defaults)
            points = space.points(dict(defaults), seed=0)
            assert points[0] == defaults  # the default point: the suite's (the paper's) setting, unchanged
            assert len(points) == 1 + space.num_samples


@pytest.mark.parametrize("data,expected", [
    ({"hparams": {"lr": {"loguniform": [1e-6, 1e-4]}}, "samples": 3}, "unknown key(s) ['samples']"),
    ({"hparams": {"lrr": {"loguniform": [1e-6, 1e-4]}}}, "unknown hyperparameter 'lrr'. Did you mean 'lr'?"),
    ({"hparams": {"lr": {"logunifrom": [1e-6, 1e-4]}}}, "unknown distribution 'logunifrom'. Did you mean 'loguniform'?"),
    ({"hparams": {"lr": {"normal": [0, 1]}}}, "Valid distributions: " + ", ".join(DISTRIBUTIONS)),
    ({"hparams": {}}, "has nothing to sweep"),
    ({"description": "empty"}, "has nothing to sweep"),
    ({"hparams": {"epochs": 3}}, "has nothing to sweep"),
    ({"hparams": {"lr": {"loguniform": [0, 1e-4]}}}, "loguniform needs 0 < low < high"),
    ({"hparams": {"lr": {"uniform": [1e-3, 1e-4]}}}, "needs low < high"),
    ({"hparams": {"lr": {"choice": []}}}, "needs a non-empty list"),
    ({"hparams": {"epochs": {"choice": [1, "many"]}}}, "Hyperparameter 'epochs' expects int"),
    ({"hparams": {"selection": {"uniform": [0, 1]}}}, "draws numbers (use choice)"),
    ({"hparams": {"lr": {"choice": [1e-4], "grid": [1e-3]}}}, "must be a value or one distribution"),
    ({"hparams": {"lr": {"grid": [1e-4]}}, "tasks": {"other": {"wdd": 0.1}}}, "unknown hyperparameter 'wdd'"),
    ({"method": "flyp", "hparams": {"lr": {"grid": [1e-4]}}}, "space of method 'flyp', not 'ft'"),
    ({"hparams": {"lr": {"grid": [1e-4]}}, "num_samples": -1}, "'num_samples' must be an integer >= 0"),
])
def test_bad_space_files_give_one_clear_error(tmp_path, data, expected):
    with pytest.raises(BenchError) as err:
        load_space(write(tmp_path, data), "ft", "shapes", FT)
    assert expected in str(err.value)


def test_space_file_errors_for_missing_file_and_yaml(tmp_path):
    with pytest.raises(BenchError, match="Sweep space file not found"):
        load_space(str(tmp_path / "nope.yaml"), "ft", "t", FT)
    with pytest.raises(BenchError, match="Unknown sweep space 'flip'. Did you mean 'flyp'"):
        load_space("flip", "ft", "t", FT)
    with pytest.raises(BenchError, match="not valid YAML"):
        load_space(write(tmp_path, "hparams: {lr: [1,\n"), "ft", "t", FT)


def test_points_grid_draws_fixed_values_and_task_overrides(tmp_path):
    path = write(tmp_path, {"num_samples": 2, "hparams": {"lr": {"loguniform": [1e-5, 1e-3]}, "wd": {"grid": [0.0, 0.2]},
                                                         "epochs": 4},
                            "tasks": {"shapes": {"batch_size": {"choice": [8, 16]}}}})
    space = load_space(path, "ft", "shapes", FT)
    points = space.points(dict(FT), seed=0)
    assert points[0] == {**FT, "epochs": 4}                          # default point, fixed values applied
    assert len(points) == 1 + 2 * 2                                   # + draws x grid
    assert [p["wd"] for p in points[1:]] == [0.0, 0.2, 0.0, 0.2]       # grid varies fastest
    assert points[1]["lr"] == points[2]["lr"] != points[3]["lr"]      # one draw is shared by its grid points
    assert all(p["epochs"] == 4 and p["batch_size"] in (8, 16) for p in points[1:])
    other = load_space(path, "ft", "another-task", FT).points(dict(FT), seed=0)
    assert all(p["batch_size"] == FT["batch_size"] for p in other)    # the override is per task
    assert space.points(dict(FT), seed=0, num_samples=0) == points[:1]


KEYS = ["lr", "wd", "warmup", "batch_size", "grad_clip", "label_smoothing", "epochs"]


def _random_space(rng: random.Random, names=None) -> dict:
    hp = {}
    for name in names or rng.sample(KEYS, rng.randint(1, 5)):
        kind = rng.choice(DISTRIBUTIONS)
        integer = isinstance(FT[name], int)
        if kind in ("choice", "grid"):
            values = sorted({rng.randint(1, 50) if integer else round(rng.uniform(0.001, 1), 3) for _ in range(rng.randint(1, 4))})
            hp[name] = {kind: values}
        else:
            lo = rng.randint(1, 10) if integer else rng.uniform(1e-6, 1e-3)
            hp[name] = {kind: [lo, lo * rng.uniform(2, 100) + 1]}
    return hp


def test_sampler_is_deterministic_and_each_hparam_has_its_own_stream(tmp_path):
    """Property loop over many random spaces: same space and seed -> same points; key order in the file does
    not matter; adding a hyperparameter leaves the other draws unchanged; draws stay inside their domain."""
    rng = random.Random(1234)
    for i in range(60):
        hp = _random_space(rng)
        seed, n = rng.randint(0, 10 ** 6), rng.randint(1, 5)
        space = load_space(write(tmp_path, {"hparams": hp}), "ft", "t", FT)
        first = space.points(dict(FT), seed, n)
        assert first == load_space(write(tmp_path, {"hparams": hp}), "ft", "t", FT).points(dict(FT), seed, n)
        shuffled = dict(reversed(list(hp.items())))
        assert first == load_space(write(tmp_path, {"hparams": shuffled}), "ft", "t", FT).points(dict(FT), seed, n)
        for p in first[1:]:
            for name, dist in hp.items():
                (kind, args), = dist.items()
                if kind in ("choice", "grid"):
                    assert p[name] in args
                else:
                    lo, hi = args
                    assert lo * (1 - 1e-3) - 0.5 <= p[name] <= hi * (1 + 1e-3) + 0.5, (name, dist, p[name])
                    assert isinstance(p[name], type(FT[name]))
        # Adding a hyperparameter shifts no other value: project the bigger sweep's points on the original
        # names (dropping the duplicates the projection creates) and get the original points back.
        extra = rng.choice(sorted(set(FT) & set(KEYS) - set(hp)))
        bigger_hp = {**hp, extra: _random_space(random.Random(i), names=[extra])[extra]}
        bigger = load_space(write(tmp_path, {"hparams": bigger_hp}), "ft", "t", FT).points(dict(FT), seed, n)
        names = sorted(hp)
        projected = []
        for p in bigger:
            row = [p[k] for k in names]
            if row not in projected:
                projected.append(row)
        assert projected == [[p[k] for k in names] for p in first]


def test_draws_do_not_depend_on_other_hparams_exactly(tmp_path):
    a = load_space(write(tmp_path, {"hparams": {"lr": {"loguniform": [1e-6, 1e-4]}}}), "ft", "t", FT)
    b = load_space(write(tmp_path, {"hparams": {"lr": {"loguniform": [1e-6, 1e-4]}, "wd": {"uniform": [0, 0.3]}}}),
                   "ft", "t", FT)
    lrs_a = [p["lr"] for p in a.points(dict(FT), 7, 6)[1:]]
    lrs_b = [p["lr"] for p in b.points(dict(FT), 7, 6)[1:]]
    assert lrs_a == lrs_b and len(set(lrs_a)) == 6
    assert all(1e-6 <= x <= 1e-4 and x == float(f"{x:.4g}") for x in lrs_a)
    assert lrs_a != [p["lr"] for p in a.points(dict(FT), 8, 6)[1:]]  # another seed, other draws
    assert all(math.isfinite(x) for x in lrs_a)
