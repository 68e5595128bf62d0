"""Property tests: whatever a user writes in --set, a --config file or a suite, the parser returns a valid plan
or raises one BenchError, never another exception."""
import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.config import COMMON_HPARAMS, RANGES, check_range
from bench.errors import BenchError
from bench.jobs.plan import CONFIG_KEYS, build_plan

METHODS = "ft,flyp,lp,l2sp"
KEYS = sorted({*COMMON_HPARAMS, *RANGES, "mask_same_class", "selection"})
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from bench.datasets.fake import make_folder_tree

    return str(make_folder_tree(tmp_path_factory.mktemp("prop") / "tiny", n_classes=2, size=8,
                                per_split={"train": 2, "val": 1, "test": 1}))


def plan_or_bench_error(**kwargs):
    """Build the plan; a BenchError is a documented refusal. A plan must hold only valid hyperparameters."""
    try:
        plan = build_plan(model="bench-tiny", pretrained="none", **kwargs)
    except BenchError as exc:
        assert str(exc).strip()
        return None
    for job in plan.jobs:
        for key, value in job.hparams.items():
            check_range(key, value)  # raises if an out-of-range value slipped through
        assert job.hparams["epochs"] >= 1 and job.hparams["batch_size"] >= 1 and math.isfinite(job.hparams["lr"])
    assert plan.alphas and all(0 <= a <= 1 for a in plan.alphas)
    return plan


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["1e-5", "nan", "-inf", "[]", "[0.1, 1]", "{a: 1}", "true", "best", "{}", "{", "a{}b", "~", "0x10"]))
yamlish = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.one_of(st.text(max_size=8), st.integers()),
                                                                         inner, max_size=3)), max_leaves=8)
set_key = st.one_of(st.sampled_from(KEYS), st.builds(lambda m, k: f"{m}.{k}", st.sampled_from(["ft", "flyp", "lp", "zz"]),
                                                    st.sampled_from(KEYS)), st.text(max_size=10))
set_value = st.one_of(st.text(max_size=12), scalars.map(lambda v: yaml.safe_dump(v).removesuffix("\n...\n").strip()))
near_range = st.one_of(st.integers(-2, 6), st.floats(-1, 3), st.sampled_from(["1e-3", "0.5", "true", "[1, 10]", "last"]))
plausible = st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), near_range)  # many become plans
set_item = st.one_of(plausible, st.builds(lambda k, v: f"{k}={v}", set_key, set_value), st.text(max_size=16))


@SETTINGS
@given(items=st.one_of(st.lists(plausible, max_size=2), st.lists(set_item, max_size=4)))
def test_set_strings_parse_or_fail_clearly(tiny_folder, items):
    plan_or_bench_error(folder=tiny_folder, methods=METHODS, sets=items)


config_value = {
    "suite": st.one_of(st.sampled_from(["toy", "few-shot", "nope"]), yamlish),
    "tasks": st.one_of(st.sampled_from(["tiny", ["tiny"], "tiny,tiny", "other"]), yamlish),
    "methods": st.one_of(st.sampled_from(["ft", ["ft", "lp"], "ft,wiseft", "zeroshot,wiseft"]), yamlish),
    "seeds": st.one_of(st.sampled_from([0, [0, 1], "0,2", -1]), yamlish),
    "model": st.one_of(st.sampled_from([{"arch": "bench-tiny", "pretrained": "none"}, {"arch": "bench-tiny"}]), yamlish),
    "pretrained": st.one_of(st.sampled_from(["none", None]), yamlish),
    "hparams": st.one_of(st.dictionaries(set_key, scalars, max_size=3), yamlish),
    "experiment": st.one_of(st.sampled_from(["exp", ""]), yamlish),
    "wiseft_alphas": st.one_of(st.lists(st.floats(-0.5, 1.5), max_size=3), yamlish),
}
configs = st.fixed_dictionaries({}, optional={**config_value, "extra": yamlish})


@SETTINGS
@given(cfg=configs)
def test_generated_config_files_parse_or_fail_clearly(tiny_folder, tmp_path_factory, cfg):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    plan_or_bench_error(folder=tiny_folder, config=str(path), methods=None if "methods" in cfg else "ft")


@SETTINGS
@given(text=st.text(max_size=60))
def test_any_config_text_parses_or_fails_clearly(tiny_folder, tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(text)
    plan_or_bench_error(folder=tiny_folder, config=str(path), methods="ft")


task_value = st.fixed_dictionaries(
    {"dataset": st.one_of(st.just("toy-shift"), yamlish), "train": st.one_of(st.just("train"), yamlish),
     "val": st.one_of(st.just("id_val"), yamlish)},
    optional={"id": yamlish, "ood": yamlish, "metric": yamlish, "hparams": yamlish, "templates": yamlish,
              "weird": yamlish})
suites = st.fixed_dictionaries(
    {"tasks": st.one_of(st.dictionaries(st.text(max_size=6), task_value, max_size=2), yamlish)},
    optional={"name": yamlish, "model": yamlish, "seeds": yamlish, "methods": yamlish, "hparams": yamlish,
              "wiseft": st.one_of(st.fixed_dictionaries({}, optional={"alphas": yamlish, "bases": yamlish}), yamlish)})


@SETTINGS
@given(suite=suites)
def test_generated_suites_validate_or_fail_clearly(suite):
    from bench.spec.suites import validate_suite

    try:
        out = validate_suite(suite, "generated.yaml")
    except BenchError:
        return
    assert all(0 <= a <= 1 for a in out["wiseft"]["alphas"])
    for task in out["tasks"].values():
        assert isinstance(task["dataset"]["name"], str) and isinstance(task["hparams"], dict)
        assert all(isinstance(e["split"], str) for e in [task["val"], *task["id"], *task["ood"]])


def test_config_keys_are_all_generated():
    assert set(config_value) == set(CONFIG_KEYS)
