"""Configuration: paths from the environment, hyperparameter defaults, layering and validation.

Hyperparameter precedence, lowest first: engine defaults < method defaults < suite task < --config
file < --set. A key may be scoped to one method as `flyp.lr`. Every key and type is checked before any
work starts.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path

from bench.errors import BenchError

# Engine-level hyperparameters every training method uses (paper-scale defaults: ImageNet, ViT-B/16).
COMMON_HPARAMS = {
    "lr": 1e-5,
    "wd": 0.1,
    "batch_size": 256,
    "epochs": 10,
    "warmup": 500,
    "grad_clip": 0.0,        # max grad norm; 0 disables
    "selection": "best",     # best ID-validation metric | last epoch | min_val_loss (epoch 0 = zero-shot included)
}
CHOICES = {"selection": ("best", "last", "min_val_loss")}


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
        value = float(value)
    if key in CHOICES and value not in CHOICES[key]:
        raise BenchError(f"Hyperparameter '{key}' must be one of {CHOICES[key]}, got {value!r}.")
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
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return BenchError(f"{where}: unknown hyperparameter '{full}'.{hint} Valid keys: {', '.join(valid)}.")


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
