"""Sweep spaces (YAML) and the deterministic sampler that turns one into hyperparameter points.

    # sweeps/spaces/flyp.yaml
    method: flyp                  # optional; checked against `bench sweep --method`
    num_samples: 8                # random draws (per grid point); `--num-samples` overrides
    include_default: true         # point 0 is the resolved default: the suite's (the paper's) settings
    hparams:                      # every task
      lr: {loguniform: [1.0e-6, 1.0e-4]}
      wd: {choice: [0.0, 0.1, 0.2]}
      warmup: {grid: [0, 500]}    # a grid axis: every random draw is crossed with every grid value
      epochs: 5                   # a plain value fixes the key for every point, the default one included
    tasks:                        # per task, keys replace the ones above
      iwildcam: {wd: {choice: [0.1, 0.2, 0.3]}}

Points are pre-enumerated, so every executor runs the same jobs with the same run_keys. As in
DomainBed, each hyperparameter of random draw r is drawn from its own RandomState seeded by a hash of
(seed, name, r): adding or removing a hyperparameter never shifts the values of the others. Draws are
rounded to 4 significant digits (readable names, run_keys stable across platforms' float libraries).
This module imports neither Ray nor torch.
"""
from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import _unknown_key, coerce
from bench.errors import BenchError, unknown_name

SPACE_DIR = Path(__file__).parent / "spaces"
SPACE_KEYS = {"method", "description", "num_samples", "include_default", "hparams", "tasks"}
DISTRIBUTIONS = ("choice", "grid", "uniform", "loguniform")
DEFAULT_NUM_SAMPLES = 8


def seed_hash(*parts) -> int:
    """A 31-bit seed from any parts, stable across processes, Python versions and machines."""
    return int(hashlib.md5(repr(parts).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


@dataclass(frozen=True)
class Dim:
    name: str
    kind: str              # fixed | choice | grid | uniform | loguniform
    values: tuple          # fixed: (v,); choice/grid: the values; uniform/loguniform: (lo, hi)
    integer: bool = False  # the hyperparameter is an int: draws are rounded

    def draw(self, seed: int, index: int):
        import numpy as np

        rs = np.random.RandomState(seed_hash(seed, self.name, index))
        if self.kind == "choice":
            return self.values[rs.randint(len(self.values))]
        lo, hi = self.values
        x = rs.uniform(lo, hi) if self.kind == "uniform" else 10 ** rs.uniform(math.log10(lo), math.log10(hi))
        return int(round(x)) if self.integer else float(f"{x:.4g}")

    def describe(self):
        if self.kind == "fixed":
            return self.values[0]
        return {self.kind: list(self.values)}


@dataclass
class Space:
    source: str                           # file path or bundled name, for messages
    dims: list[Dim]                       # resolved for one task, sorted by name
    num_samples: int = DEFAULT_NUM_SAMPLES
    include_default: bool = True
    raw: dict = field(default_factory=dict)

    @property
    def random(self) -> list[Dim]:
        return [d for d in self.dims if d.kind in ("choice", "uniform", "loguniform")]

    @property
    def grid(self) -> list[Dim]:
        return [d for d in self.dims if d.kind == "grid"]

    @property
    def fixed(self) -> dict:
        return {d.name: d.values[0] for d in self.dims if d.kind == "fixed"}

    def describe(self) -> dict:
        """The resolved space as data (saved with the sweep, logged on its parent run)."""
        return {"num_samples": self.num_samples, "include_default": self.include_default,
                "hparams": {d.name: d.describe() for d in self.dims}}

    def points(self, base: dict, seed: int = 0, num_samples: int | None = None) -> list[dict]:
        """Hyperparameter points, deduplicated in order: [default] + draws x grid. `base` holds every
        hyperparameter (the resolved defaults); each point is a full copy of it with the swept keys set."""
        n = self.num_samples if num_samples is None else num_samples
        if n < 0:
            raise BenchError(f"--num-samples must be >= 0, got {n}.")
        fixed = self.fixed
        out = [{**base, **fixed}] if self.include_default else []
        grid = self.grid
        grid_points = list(itertools.product(*[d.values for d in grid]))
        for r in range(n if self.random else 1):
            draws = {d.name: d.draw(seed, r) for d in self.random}
            for values in grid_points:
                out.append({**base, **fixed, **dict(zip((d.name for d in grid), values)), **draws})
        unique, seen = [], set()
        for hp in out:
            key = repr(sorted(hp.items()))
            if key not in seen:
                seen.add(key)
                unique.append(hp)
        if not unique:
            raise BenchError(f"Sweep space {self.source} gives no points: use --num-samples >= 1 or include_default: true.")
        return unique


def space_names() -> list[str]:
    return sorted(p.stem for p in SPACE_DIR.glob("*.yaml"))


def space_path(spec: str | None, method: str) -> Path:
    """`--space` is a YAML file or a bundled space name; without it, the method's bundled space or `default`."""
    if spec is None:
        own = SPACE_DIR / f"{method}.yaml"
        return own if own.is_file() else SPACE_DIR / "default.yaml"
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    bundled = SPACE_DIR / f"{spec}.yaml"
    if bundled.is_file():
        return bundled
    if path.suffix in (".yaml", ".yml") or "/" in spec:
        raise BenchError(f"Sweep space file not found: {path}. Bundled spaces: {', '.join(space_names())}.")
    raise unknown_name("sweep space", spec, space_names())


def load_space(spec: str | None, method: str, task: str, defaults: dict) -> Space:
    """Read, validate and resolve a space for one (method, task). `defaults` are the method's default
    hyperparameters: they name the valid keys and give each key's type."""
    from bench.spec.suites import load_yaml

    path = space_path(spec, method)
    where = f"sweep space {path}"
    raw = load_yaml(path)
    extra = sorted(set(raw) - SPACE_KEYS)
    if extra:
        raise BenchError(f"{where}: unknown key(s) {extra}; allowed keys: {sorted(SPACE_KEYS)}.")
    if raw.get("method") not in (None, method):
        raise BenchError(f"{where} is the space of method '{raw['method']}', not '{method}'. "
                         f"Pass --space with a space for '{method}' (bundled: {', '.join(space_names())}).")
    hparams = _mapping(raw.get("hparams"), f"{where}: 'hparams'")
    tasks = _mapping(raw.get("tasks"), f"{where}: 'tasks'")
    for name, entry in tasks.items():
        _mapping(entry, f"{where}: tasks: '{name}'")
    num_samples = raw.get("num_samples", DEFAULT_NUM_SAMPLES)
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 0:
        raise BenchError(f"{where}: 'num_samples' must be an integer >= 0, got {num_samples!r}.")
    include_default = raw.get("include_default", True)
    if not isinstance(include_default, bool):
        raise BenchError(f"{where}: 'include_default' must be true or false, got {include_default!r}.")

    # Every entry of every task is checked, not only the requested task's, so a typo never waits.
    for name, entries in [("hparams", hparams)] + [(f"tasks: {t}", e or {}) for t, e in tasks.items()]:
        for key, value in entries.items():
            _dim(key, value, defaults, f"{where}: {name}")
    merged = {**hparams, **(tasks.get(task) or {})}
    dims = sorted((_dim(k, v, defaults, f"{where}: {'tasks: ' + task if k in (tasks.get(task) or {}) else 'hparams'}")
                   for k, v in merged.items()), key=lambda d: d.name)
    space = Space(str(path), dims, num_samples, include_default, raw)
    if not space.random and not space.grid:
        raise BenchError(f"{where} has nothing to sweep for task '{task}': add a distribution under 'hparams', "
                         "e.g. lr: {loguniform: [1.0e-6, 1.0e-4]} or wd: {choice: [0.0, 0.1]} "
                         f"(distributions: {', '.join(DISTRIBUTIONS)}).")
    return space


def _mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BenchError(f"{where} must be a mapping, got {value!r}.")
    return value


def _dim(key: str, value, defaults: dict, where: str) -> Dim:
    import difflib

    if key not in defaults:
        raise _unknown_key(key, key, sorted(defaults), where)
    default = defaults[key]
    name = f"{key}"
    if not isinstance(value, dict):
        return Dim(key, "fixed", (coerce(name, value, default),))
    if len(value) != 1:
        raise BenchError(f"{where}: '{key}' must be a value or one distribution, e.g. {{loguniform: [1.0e-6, 1.0e-4]}}; "
                         f"got {value!r}.")
    (kind, args), = value.items()
    if kind not in DISTRIBUTIONS:
        close = difflib.get_close_matches(str(kind), DISTRIBUTIONS, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise BenchError(f"{where}: '{key}' has unknown distribution '{kind}'.{hint} "
                         f"Valid distributions: {', '.join(DISTRIBUTIONS)}.")
    if not isinstance(args, list) or not args:
        raise BenchError(f"{where}: '{key}': {kind} needs a non-empty list, got {args!r}.")
    if kind in ("choice", "grid"):
        return Dim(key, kind, tuple(coerce(name, v, default) for v in args))
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        raise BenchError(f"{where}: '{key}' is a {type(default).__name__}; {kind} draws numbers (use choice).")
    if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise BenchError(f"{where}: '{key}': {kind} needs [low, high] numbers, got {args!r}.")
    lo, hi = float(args[0]), float(args[1])
    if not lo < hi:
        raise BenchError(f"{where}: '{key}': {kind} needs low < high, got {args!r}.")
    if kind == "loguniform" and lo <= 0:
        raise BenchError(f"{where}: '{key}': loguniform needs 0 < low < high, got {args!r}.")
    return Dim(key, kind, (lo, hi), integer=isinstance(default, int))
