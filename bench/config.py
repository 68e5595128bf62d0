"""Configuration: paths from the environment, hyperparameter defaults, layering and validation.

Hyperparameter precedence, lowest first: engine defaults < method defaults < suite task < --config
file < --set. A key may be scoped to one method as `flyp.lr`. Every key and type is checked before any
work starts.
"""
from __future__ import annotations

import math
import os
from numbers import Real
from pathlib import Path

from bench.errors import BenchError, did_you_mean

# Engine-level hyperparameters every training method uses (paper-scale defaults: ImageNet, ViT-B/16).
# Where no layer sets batch_size or warmup, bench/train/fitted_defaults.py derives them from the training set's size.
COMMON_HPARAMS = {
    "lr": 1e-5,
    "wd": 0.1,
    "batch_size": 256,
    "epochs": 10,
    "warmup": 500,
    "grad_clip": 0.0,        # max grad norm; 0 disables
    "selection": "best",     # best ID-validation metric | last epoch | min_val_loss (epoch 0 = zero-shot included)
}
CHOICES = {"selection": ("best", "last", "min_val_loss"), "loss": ("auto", "clip", "siglip")}


def _positive(v):
    return v > 0


def _non_negative(v):
    return v >= 0


def _c_grid(v):
    return bool(v) and all(isinstance(c, Real) and not isinstance(c, bool) and math.isfinite(c) and c > 0 for c in v)


# Value ranges by key (common and method-specific, see methods/*.py `hparams`): (test, what a valid value is).
# Every float must also be finite. Checked in `coerce`, so --set, --config, suites and sweep spaces all obey them.
RANGES = {
    "lr": (_positive, "> 0 (e.g. 1e-5)"),
    "wd": (_non_negative, ">= 0 (0 disables weight decay)"),
    "batch_size": (lambda v: v >= 1, ">= 1"),
    "epochs": (lambda v: v >= 1, ">= 1 (for no training use --methods zeroshot)"),
    "warmup": (_non_negative, ">= 0 warmup steps"),
    "grad_clip": (_non_negative, ">= 0 (0 disables clipping)"),
    "label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "l2sp_weight": (_non_negative, ">= 0"),
    "backbone_wd": (_non_negative, ">= 0 (L2-SP: 0 leaves the penalty as the backbone's only regulariser)"),
    "logit_scale_max": (lambda v: v == 0 or v > 1, "0 (no clamp) or > 1 (e.g. 100)"),
    "lp_c_grid": (_c_grid, "a non-empty list of positive finite numbers (e.g. [0.1, 1, 10])"),
}


def check_range(key: str, value) -> None:
    """Raise for a value of the right type but outside its valid range (`key` may be scoped: flyp.lr)."""
    bare = key.rpartition(".")[2]
    if isinstance(value, float) and not math.isfinite(value):
        raise BenchError(f"Hyperparameter '{key}' must be a finite number, got {value!r}.")
    rule = RANGES.get(bare)
    if rule and not rule[0](value):
        raise BenchError(f"Hyperparameter '{key}' must be {rule[1]}, got {value!r}.")


def check_alphas(value, where: str) -> list[float]:
    """WiSE-FT mixing coefficients: a non-empty list of numbers in [0, 1] (0 = zero-shot, 1 = finetuned)."""
    example = "for example [0, 0.5, 1]"
    if not isinstance(value, list) or not value:
        raise BenchError(f"{where} must be a non-empty list of WiSE-FT alphas in [0, 1], {example}; got {value!r}.")
    bad = [a for a in value if isinstance(a, bool) or not isinstance(a, Real) or not 0 <= a <= 1]
    if bad:
        raise BenchError(f"{where}: every WiSE-FT alpha must be a number in [0, 1] (0 = zero-shot weights, "
                         f"1 = finetuned), {example}; got {bad[0]!r}.")
    return [float(a) for a in value]


def expect(value, kind: type | tuple, where: str, example: str):
    """Shape check for config and suite entries: one message naming the entry, what it must be and an example."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = {dict: "a mapping", list: "a list", str: "a string", int: "an integer", type(None): "empty"}
        wanted = " or ".join(names.get(k, k.__name__) for k in kinds)
        raise BenchError(f"{where} must be {wanted}, for example {example}; got {type(value).__name__} {value!r}.")
    return value


def bench_home() -> Path:
    return Path(os.environ.get("BENCH_HOME", "runs")).expanduser().resolve()


def data_root() -> Path | None:
    root = os.environ.get("BENCH_DATA")
    return Path(root).expanduser().resolve() if root else None


def method_defaults(method_cls) -> dict:
    return {**COMMON_HPARAMS, **getattr(method_cls, "hparams", {})}


def coerce(key: str, value, default):
    """Check `value` against the type of `default`; strings from --set are parsed as YAML scalars first."""
    if isinstance(value, str) and not isinstance(default, str):
        value = _parse_scalar(value)
    kind = type(default)
    ok = (
        (kind is bool and isinstance(value, bool))
        or (kind is int and isinstance(value, int) and not isinstance(value, bool))
        or (kind is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (kind is str and isinstance(value, str))
        or (kind is list and isinstance(value, list))
    )
    if kind is int and isinstance(value, float) and value.is_integer():
        value, ok = int(value), True
    if not ok:
        raise BenchError(f"Hyperparameter '{key}' expects {kind.__name__} (default {default!r}), got {value!r}.")
    if kind is float:
        try:
            value = float(value)
        except OverflowError:  # an integer too large for a float (YAML reads 1000...0 as int)
            raise BenchError(f"Hyperparameter '{key}' must be a finite number, got {value!r}.") from None
    check_range(key, value)
    choices = CHOICES.get(key.rpartition(".")[2])
    if choices and value not in choices:
        raise BenchError(f"Hyperparameter '{key}' must be one of {choices}, got {value!r}.")
    return value


def _parse_scalar(text: str):
    """'3e-5' -> 3e-05 (YAML 1.1 would keep it a string), '[0.1, 1]' -> list, 'true' -> True."""
    import yaml

    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def check_layer(layer, where: str) -> dict:
    """An `hparams` entry: a mapping of key (or method.key) to value; None (an empty YAML entry) means none."""
    layer = {} if layer is None else expect(layer, dict, where, "{lr: 1e-5, flyp.epochs: 2}")
    for key in layer:
        if not isinstance(key, str):
            raise BenchError(f"{where}: hyperparameter names must be strings like lr or flyp.lr, got {key!r}.")
    return layer


def split_scoped(overrides: dict, method_names: list[str]) -> tuple[dict, dict[str, dict]]:
    """Split {'lr': x, 'flyp.lr': y} into common overrides and per-method overrides."""
    common, scoped = {}, {}
    for key, value in overrides.items():
        method, dot, sub = key.partition(".")
        if dot and method in method_names:
            scoped.setdefault(method, {})[sub] = value
        else:
            common[key] = value
    return common, scoped


def validate_keys(layers: list[dict], defaults_by_method: dict[str, dict], where: str) -> None:
    """Each unscoped key must belong to at least one selected method; each scoped key to its method."""
    known_any = sorted({k for d in defaults_by_method.values() for k in d})
    for layer in layers:
        for key in layer:
            method, dot, sub = key.partition(".")
            if dot:
                if method not in defaults_by_method:
                    raise BenchError(f"{where}: '{key}' is scoped to method '{method}', which is not selected "
                                     f"(selected: {', '.join(defaults_by_method)}).")
                if sub not in defaults_by_method[method]:
                    raise _unknown_key(key, sub, sorted(defaults_by_method[method]), where)
            elif key not in known_any:
                raise _unknown_key(key, key, known_any, where)


def _unknown_key(full: str, key: str, valid: list[str], where: str) -> BenchError:
    return BenchError(f"{where}: unknown hyperparameter '{full}'.{did_you_mean(key, valid)} Valid keys: {', '.join(valid)}.")


def resolve_hparams(method: str, defaults: dict, layers: list[dict]) -> dict:
    """Apply layers (each may hold common and `method.key` entries) over the method's defaults."""
    out = dict(defaults)
    for layer in layers:
        for key, value in layer.items():
            scope, dot, sub = key.partition(".")
            if dot:
                if scope != method:
                    continue
                key = sub
            if key in out:
                out[key] = coerce(key if not dot else f"{scope}.{key}", value, defaults[key])
    return out


def parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise BenchError(f"--set expects key=value (for example --set lr=3e-5 or --set flyp.epochs=2), got '{item}'.")
        out[key.strip()] = value.strip()
    return out
