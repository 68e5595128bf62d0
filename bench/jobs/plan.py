"""Resolve a `bench run` request into jobs, checking every name, key, type and dataset before any work."""
from __future__ import annotations

from dataclasses import dataclass, field

from bench.config import check_alphas, check_layer, expect, method_defaults, parse_sets, resolve_hparams, validate_keys
from bench.errors import BenchError, unknown_name
from bench.train.fitted_defaults import explicit_keys, fit_hparams, train_size
from bench.spec.job import Job
from bench.spec.suites import DEFAULT_ALPHAS, check_model, folder_task, load_suite, load_yaml

DEFAULT_SUITE = "toy"
# key -> (allowed types, example), checked before any value is used.
CONFIG_KEYS = {
    "suite": (str, "toy"),
    "tasks": ((str, list), "[toy-shift, toy-cameras]"),
    "methods": ((str, list), "[zeroshot, ft, flyp]"),
    "seeds": ((int, str, list), "[0, 1, 2]"),
    "model": (dict, "{arch: ViT-B-16, pretrained: openai}"),
    "pretrained": ((str, type(None)), "openai"),
    "hparams": (dict, "{lr: 1e-5, flyp.epochs: 2}"),
    "experiment": (str, "my-experiment"),
    "wiseft_alphas": (list, "[0, 0.5, 1]"),
}


@dataclass
class Plan:
    suite: str
    experiment: str
    tasks: list[str]
    methods: list[str]          # trained/evaluated methods, registry order kept as given
    jobs: list[Job]
    wiseft_bases: list[str] = field(default_factory=list)
    alphas: list[float] = field(default_factory=lambda: list(DEFAULT_ALPHAS))
    schedules: list = field(default_factory=list)   # per job: bench.train.fitted_defaults.Schedule (None: data not read or no training)
    warnings: list[str] = field(default_factory=list)  # shown before any work starts
    # (task, method) pairs whose lr nothing sets (suite, --config, --set) on pretrained weights: `bench run`
    # searches their lr on ID validation first (sweeps/tune.py) unless --no-tune or --tune N.
    lr_search: list[tuple[str, str]] = field(default_factory=list)


def _names(value, what: str = "names") -> list[str] | None:
    """Comma-separated names or a list of names; a name listed twice would make duplicate jobs."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else expect(value, list, what, "[a, b] or 'a,b'")
    for v in items:
        expect(v, (str, int), f"{what}: entry", "ft")
    names = [str(v).strip() for v in items if str(v).strip()]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise BenchError(f"{what}: {twice[0]!r} is listed twice; list each once.")
    return names


def load_config(path: str | None) -> dict:
    """A --config file, its keys and the shape of every value checked."""
    if not path:
        return {}
    where = f"--config {path}"
    cfg = load_yaml(path)
    bad = sorted(str(k) for k in cfg if k not in CONFIG_KEYS)
    if bad:
        raise BenchError(f"{path}: unknown key(s) {bad}; allowed: {sorted(CONFIG_KEYS)}.")
    # An empty YAML entry (`hparams:`) means "not given", except `pretrained:` where null means random init.
    cfg = {k: v for k, v in cfg.items() if v is not None or k == "pretrained"}
    for key, value in cfg.items():
        kinds, example = CONFIG_KEYS[key]
        expect(value, kinds, f"{where}: '{key}'", example)
    for key in ("tasks", "methods"):  # checked even where a command-line flag overrides them
        if key in cfg:
            cfg[key] = _names(cfg[key], f"{where}: {key}")
    if "seeds" in cfg:
        cfg["seeds"] = _seeds(cfg["seeds"])
    if "hparams" in cfg:
        check_layer(cfg["hparams"], f"{where}: hparams")
    if "model" in cfg:
        check_model(cfg["model"], f"{where}: model")
    if "experiment" in cfg and not cfg["experiment"].strip():
        raise BenchError(f"{where}: 'experiment' must be a non-empty name.")
    if "wiseft_alphas" in cfg:
        cfg["wiseft_alphas"] = check_alphas(cfg["wiseft_alphas"], f"{where}: wiseft_alphas")
    return cfg


def build_plan(suite: str | None = None, folder: str | None = None, tasks=None, methods=None, model: str | None = None,
               pretrained: str | None = None, seeds=None, sets: list[str] | None = None, config: str | None = None,
               experiment: str | None = None, wise_ft: bool = False, runtime: dict | None = None,
               check_data: bool = True) -> Plan:
    from bench.methods import METHODS
    from bench.model.factory import check_arch, check_pretrained

    cfg = load_config(config)
    if runtime is not None:
        from bench.train.options import check_runtime

        check_runtime(runtime, local=False)  # values; the CLI checks the device exists where jobs run

    if folder:
        name, task = folder_task(folder)
        spec = {"name": "folder", "tasks": {name: task}, "seeds": [0], "hparams": {}, "wiseft": {"alphas": DEFAULT_ALPHAS},
                "model": {"arch": "toy-clip", "pretrained": "default"}}
    else:
        spec = load_suite(suite or cfg.get("suite") or DEFAULT_SUITE)

    task_names = _names(tasks, "--tasks") or cfg.get("tasks") or list(spec["tasks"])
    for t in task_names:
        if t not in spec["tasks"]:
            raise unknown_name(f"task of suite '{spec['name']}'", t, list(spec["tasks"]))
    method_names = (_names(methods, "--methods") or cfg.get("methods")
                    or _names(spec.get("methods"), "suite methods") or ["zeroshot", "ft", "flyp"])
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
    if "soup" in method_names:  # soups need K >= 2 finished configurations: a sweep or --tune makes them
        raise BenchError("soup averages the finished configurations of a sweep, so it is not a method to list: run "
                         "`bench run --methods ft,flyp --tune N` or `bench sweep --methods ft`, which make the uniform "
                         "and greedy soups of every (task, method, seed) with at least 2 configurations.")

    seed_list = _seeds(seeds if seeds is not None else cfg.get("seeds", spec["seeds"]))
    model_cfg = {**spec.get("model", {}), **cfg.get("model", {})}
    arch = model or model_cfg.get("arch")
    if not arch:
        raise BenchError("No model given: pass --model ARCH (see `bench list models`).")
    check_arch(arch)
    weights = pretrained if pretrained is not None else cfg.get("pretrained", model_cfg.get("pretrained") if arch == model_cfg.get("arch") else None)
    if model and model != model_cfg.get("arch") and pretrained is None:
        weights = "default" if arch == "toy-clip" else None
    from_scratch = check_pretrained(arch, weights).weights is None  # fails now, not after the first job, if a checkpoint is missing

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

    from bench.spec.tasks import build_task

    for t in task_names if check_data else []:  # `bench status` lists jobs without their data
        build_task(t, spec["tasks"][t])  # missing or malformed data fails here, before training

    exp = experiment or cfg.get("experiment") or spec.get("experiment") or spec["name"]
    jobs, schedules, warnings, lr_search = [], [], [], []
    sizes = _TrainSizes(spec["tasks"], required=check_data)
    for t in task_names:
        for m in trained:
            hp = resolve_hparams(m, defaults[m], layers_by_task[t])
            explicit = explicit_keys(m, layers_by_task[t])
            if classes[m].trains and not from_scratch and not explicit_keys(m, layers_by_task[t], ("lr",)):
                lr_search.append((t, m))  # random init (--pretrained none) has no zero-shot to move from: not searched
            for s in seed_list:
                job_hp, schedule = hp, None
                n_train = sizes.get(t, s) if classes[m].trains else None
                if n_train is not None:
                    job_hp, schedule, notes = fit_hparams(hp, explicit, n_train, f"{t} {m} seed {s}")
                    warnings += notes
                jobs.append(Job(suite=spec["name"], experiment=exp, task=t, task_spec=spec["tasks"][t], method=m,
                                hparams=job_hp, seed=s, model={"arch": arch, "pretrained": weights},
                                runtime=dict(runtime or {})))
                schedules.append(schedule)
    alphas = cfg.get("wiseft_alphas", spec.get("wiseft", {}).get("alphas", DEFAULT_ALPHAS))  # both checked already
    return Plan(spec["name"], exp, task_names, method_names, jobs, bases, alphas, schedules, warnings, lr_search)


class _TrainSizes:
    """Training-set sizes per (task, seed), counted once. Without `required` (`bench status`, which lists
    jobs without their data), missing data leaves the size unknown: jobs keep their unfitted values."""

    def __init__(self, task_specs: dict, required: bool):
        self.specs, self.required, self.cache = task_specs, required, {}

    def get(self, task: str, seed: int) -> int | None:
        from bench.spec.tasks import with_shot_seed

        key = (task, repr(with_shot_seed(self.specs[task]["dataset"], seed)))
        if key not in self.cache:
            try:
                self.cache[key] = train_size(task, self.specs[task], seed)
            except BenchError:
                if self.required:
                    raise
                self.cache[key] = None
        return self.cache[key]


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
    """Non-negative integers (few-shot draws seed numpy with them), each once, at least one."""
    fix = "pass comma-separated non-negative integers, e.g. --seeds 0,1,2 (or seeds: [0, 1, 2] in a config)"
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(items, str):
        items = [s.strip() for s in items.split(",") if s.strip()]
    if not isinstance(items, list) or not items:
        raise BenchError(f"Seeds: {fix}; got {value!r}.")
    seeds = []
    for s in items:
        if isinstance(s, str) and s.strip().isdigit():
            s = int(s)
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise BenchError(f"Seeds: {fix}; got {s!r}.")
        seeds.append(s)
    if len(set(seeds)) < len(seeds):
        raise BenchError(f"Seeds: each seed once (got {value!r}); {fix}.")
    return seeds


PLAN_ARGS = ("suite", "folder", "tasks", "methods", "model", "pretrained", "seeds", "sets", "config", "experiment")


def plan_from_args(args, **options) -> Plan:
    """The plan a command line selects (`bench run`, `bench status`, a torchrun or SLURM worker): the selection
    arguments that `add_selection_args` defines, plus `options` (wise_ft, runtime, check_data)."""
    return build_plan(**{name: getattr(args, name, None) for name in PLAN_ARGS}, **options)
