"""Resolve a `bench run` request into jobs, checking every name, key, type and dataset before any work."""
from __future__ import annotations

from dataclasses import dataclass, field

from bench.config import method_defaults, parse_sets, resolve_hparams, validate_keys
from bench.errors import BenchError, unknown_name
from bench.jobs import Job
from bench.suites import DEFAULT_ALPHAS, folder_task, load_suite, load_yaml

DEFAULT_SUITE = "toy"
CONFIG_KEYS = {"suite", "tasks", "methods", "seeds", "model", "pretrained", "hparams", "experiment", "wiseft_alphas"}


@dataclass
class Plan:
    suite: str
    experiment: str
    tasks: list[str]
    methods: list[str]          # trained/evaluated methods, registry order kept as given
    jobs: list[Job]
    wiseft_bases: list[str] = field(default_factory=list)
    alphas: list[float] = field(default_factory=lambda: list(DEFAULT_ALPHAS))


def _names(value) -> list[str] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(v).strip() for v in items if str(v).strip()]


def build_plan(suite: str | None = None, folder: str | None = None, tasks=None, methods=None, model: str | None = None,
               pretrained: str | None = None, seeds=None, sets: list[str] | None = None, config: str | None = None,
               experiment: str | None = None, wise_ft: bool = False, runtime: dict | None = None,
               check_data: bool = True) -> Plan:
    from bench.methods import METHODS
    from bench.models import check_arch, check_pretrained

    cfg = load_yaml(config) if config else {}
    bad = sorted(set(cfg) - CONFIG_KEYS)
    if bad:
        raise BenchError(f"{config}: unknown key(s) {bad}; allowed: {sorted(CONFIG_KEYS)}.")

    if folder:
        name, task = folder_task(folder)
        spec = {"name": "folder", "tasks": {name: task}, "seeds": [0], "hparams": {}, "wiseft": {"alphas": DEFAULT_ALPHAS},
                "model": {"arch": "toy-clip", "pretrained": "default"}}
    else:
        spec = load_suite(suite or cfg.get("suite") or DEFAULT_SUITE)

    task_names = _names(tasks) or _names(cfg.get("tasks")) or list(spec["tasks"])
    for t in task_names:
        if t not in spec["tasks"]:
            raise unknown_name(f"task of suite '{spec['name']}'", t, list(spec["tasks"]))
    method_names = _names(methods) or _names(cfg.get("methods")) or _names(spec.get("methods")) or ["zeroshot", "ft", "flyp"]
    for m in method_names:
        METHODS.check(m)
    if wise_ft and "wiseft" not in method_names:
        method_names.append("wiseft")
    trained = [m for m in method_names if not METHODS.meta(m).get("derived")]
    classes = {m: METHODS.get(m) for m in trained}
    bases = [m for m in trained if classes[m].wiseft] if "wiseft" in method_names else []
    if not methods and spec.get("wiseft", {}).get("bases"):  # a suite's default run may ensemble fewer methods
        bases = [m for m in bases if m in spec["wiseft"]["bases"]]
    if "wiseft" in method_names and not bases:
        finetuners = [m for m in METHODS.names() if not METHODS.meta(m).get("derived") and METHODS.get(m).wiseft]
        raise BenchError(f"wiseft interpolates finished finetuning runs: add one of {', '.join(finetuners)} to --methods.")

    seed_list = _seeds(seeds if seeds is not None else cfg.get("seeds", spec["seeds"]))
    model_cfg = {**spec.get("model", {}), **cfg.get("model", {})}
    arch = model or model_cfg.get("arch")
    if not arch:
        raise BenchError("No model given: pass --model ARCH (see `bench list models`).")
    check_arch(arch)
    weights = pretrained if pretrained is not None else cfg.get("pretrained", model_cfg.get("pretrained") if arch == model_cfg.get("arch") else None)
    if model and model != model_cfg.get("arch") and pretrained is None:
        weights = "default" if arch == "toy-clip" else None
    check_pretrained(arch, weights)  # fails now, not after the first job, if a checkpoint is missing

    overrides = parse_sets(sets or [])
    defaults = {m: method_defaults(classes[m]) for m in trained}
    every = {m: method_defaults(METHODS.get(m)) for m in METHODS.names() if not METHODS.meta(m).get("derived")}
    validate_keys([cfg.get("hparams", {})], defaults, f"--config {config}")
    validate_keys([overrides], defaults, "--set")
    layers_by_task = {}
    for t in task_names:
        suite_layers = [spec.get("hparams", {}), spec["tasks"][t].get("hparams", {})]
        # A suite may set keys for methods not selected in this run; it must not hold keys no method knows.
        validate_keys(suite_layers, every, f"suite '{spec['name']}' task '{t}'")
        layers = [_scope_filter(layer, method_names) for layer in suite_layers + [cfg.get("hparams", {}), overrides]]
        layers_by_task[t] = layers

    from bench.tasks import build_task

    for t in task_names if check_data else []:  # `bench status` lists jobs without their data
        build_task(t, spec["tasks"][t])  # missing or malformed data fails here, before training

    exp = experiment or cfg.get("experiment") or spec.get("experiment") or spec["name"]
    jobs = []
    for t in task_names:
        for m in trained:
            hp = resolve_hparams(m, defaults[m], layers_by_task[t])
            for s in seed_list:
                jobs.append(Job(suite=spec["name"], experiment=exp, task=t, task_spec=spec["tasks"][t], method=m,
                                hparams=hp, seed=s, model={"arch": arch, "pretrained": weights}, runtime=dict(runtime or {})))
    alphas = [float(a) for a in cfg.get("wiseft_alphas", spec.get("wiseft", {}).get("alphas", DEFAULT_ALPHAS))]
    return Plan(spec["name"], exp, task_names, method_names, jobs, bases, alphas)


def _scope_filter(layer: dict, selected: list[str]) -> dict:
    """Drop `method.key` entries of a suite layer whose method is not selected in this run."""
    from bench.methods import METHODS

    out = {}
    for k, v in (layer or {}).items():
        scope, dot, _ = k.partition(".")
        if dot and scope in METHODS and scope not in selected:
            continue
        out[k] = v
    return out


def _seeds(value) -> list[int]:
    items = _names(value) if not isinstance(value, int) else [value]
    try:
        return [int(s) for s in items]
    except (TypeError, ValueError):
        raise BenchError(f"--seeds expects comma-separated integers, got {value!r}.") from None
