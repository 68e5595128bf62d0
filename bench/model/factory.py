"""open_clip models by name: pretrained tags, local checkpoint files, and the project's own configs.

`load_model(arch, pretrained)` returns a `LoadedModel` with the CLIP model, train/eval transforms and
tokenizer. `pretrained` is an open_clip tag ("openai", "laion400m_e31"), a local checkpoint path,
"default" (the arch's bundled checkpoint, e.g. toy-clip), or None/"none" for random init.

Weights always get the architecture they were trained with: `resolve_model` reads open_clip's pretrained
config for a tag (OpenAI's weights need QuickGELU, which open_clip's plain `ViT-B-16` config lacks and only
warns about) or a file's own metadata, and builds that. A plain name ("ViT-B-16") names the family and takes
its activation from the weights; a `-quickgelu` name, or a file's arch or shapes, that contradicts what the
weights are known to be is a BenchError naming the fix.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench.errors import BenchError, unknown_name
from bench.model.weights_file import weights_identity

CONFIG_DIR = Path(__file__).parent / "configs"
ASSET_DIR = Path(__file__).parent / "assets"
# Bundled checkpoints used when pretrained == "default".
# toy-sigmoid (the toy world's SigLIP-style model) is not shipped: `bench pretrain --objective siglip` makes it.
DEFAULT_CHECKPOINTS = {"toy-clip": ASSET_DIR / "toy-clip.pt", "toy-sigmoid": ASSET_DIR / "toy-sigmoid.pt"}
NO_WEIGHTS = (None, "", "none", "None", "random")
QUICKGELU = "-quickgelu"
PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")

_registered = False


def register_model_configs() -> None:
    """Make the project's model configs (tiny test model, toy-clip) known to open_clip."""
    global _registered
    if _registered:
        return
    import open_clip

    for cfg in sorted(CONFIG_DIR.glob("*.json")):
        open_clip.add_model_config(cfg)
    _registered = True


def model_names() -> list[str]:
    register_model_configs()
    import open_clip

    return open_clip.list_models()


@dataclass
class LoadedModel:
    model: Any  # open_clip.CLIP
    train_transform: Callable
    eval_transform: Callable
    tokenizer: Callable
    arch: str
    pretrained: str | None
    # The model as actually built (see `describe_built`): record it with the run.
    built: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """What to build: the open_clip config, its activation, the weights and their preprocessing."""
    arch: str  # as requested
    config: str  # open_clip config name passed to create_model
    quick_gelu: bool
    weights: str | None  # tag, file path, or None
    source: str  # "tag", "file" or "none"
    tag: str | None = None  # the open_clip tag whose pretrained config applies (given, or the file's identity)
    preprocess: tuple = ()  # (key, value) overrides of mean/std/interpolation/resize_mode, for files


def resolve_pretrained(arch: str, pretrained: str | None) -> str | None:
    if pretrained in NO_WEIGHTS:
        return None
    if pretrained == "default":
        path = DEFAULT_CHECKPOINTS.get(arch)
        if path is None:
            raise BenchError(
                f"Model '{arch}' has no bundled checkpoint; pass --pretrained TAG or --pretrained /path/to/weights.pt."
            )
        if not path.exists():
            how = "bench pretrain --objective siglip" if arch == "toy-sigmoid" else "bench pretrain"
            raise BenchError(f"The bundled checkpoint for '{arch}' is missing at {path}; run `{how}` to create it.")
        return str(path)
    return str(pretrained)


def check_arch(arch: str) -> str:
    names = model_names()
    if arch not in names:
        raise unknown_name("model", arch, names)
    return arch


def _is_file_like(weights: str) -> bool:
    return os.sep in weights or weights.endswith((".pt", ".pth", ".bin", ".safetensors")) or Path(weights).is_file()


def family(arch: str) -> str:
    """ViT-B-16-quickgelu -> ViT-B-16: the architecture without the activation choice."""
    return arch[: -len(QUICKGELU)] if arch.endswith(QUICKGELU) else arch


def _config_quick_gelu(arch: str) -> bool:
    import open_clip

    return bool((open_clip.get_model_config(arch) or {}).get("quick_gelu", False))


def check_pretrained(arch: str, pretrained: str | None) -> ModelSpec:
    """Fail before any work on weights that cannot be built right: an unknown tag, a missing, unreadable or
    foreign checkpoint file, or an explicit activation the weights contradict. Cheap: no model is built
    beyond a shape-only skeleton, and files are memory-mapped."""
    return resolve_model(arch, pretrained)


def resolve_model(arch: str, pretrained: str | None) -> ModelSpec:
    check_arch(arch)
    weights = resolve_pretrained(arch, pretrained)
    if weights is None:
        return ModelSpec(arch, arch, _config_quick_gelu(arch), None, "none")
    if _is_file_like(weights):
        return _resolve_file(arch, weights)
    return _resolve_tag(arch, weights)


def _resolve_tag(arch: str, tag: str) -> ModelSpec:
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    cfg = get_pretrained_cfg(arch, tag)
    base_cfg = get_pretrained_cfg(family(arch), tag)
    if not cfg and base_cfg and not base_cfg.get("quick_gelu", False):
        raise BenchError(f"'{family(arch)}' weights '{tag}' were trained with GELU, not QuickGELU: "
                         f"pass --model {family(arch)} (not {arch}).")
    if not cfg:
        tags = list_pretrained_tags_by_model(arch)
        raise unknown_name(f"pretrained tag for model '{arch}' (or pass a checkpoint file)", tag, tags)
    wanted = bool(cfg.get("quick_gelu", False))
    if _config_quick_gelu(arch) and not wanted:
        raise BenchError(f"Weights '{tag}' were trained with GELU, but '{arch}' builds QuickGELU: pass --model {family(arch)}.")
    return ModelSpec(arch, arch, wanted, tag, "tag", tag=tag)


def _resolve_file(arch: str, path: str) -> ModelSpec:
    from bench.model.weights_file import read_checkpoint

    if not Path(path).is_file():
        raise BenchError(f"Checkpoint file not found: {path}. Pass --pretrained with an existing open_clip checkpoint file.")
    info = read_checkpoint(path)
    known, why, preprocess, tag = _known_activation(arch, info)
    if known is False and arch.endswith(QUICKGELU):
        raise BenchError(f"{path} holds weights trained with GELU ({why}), but '{arch}' builds QuickGELU: "
                         f"pass --model {family(arch)}.")
    quick = known if known is not None else _config_quick_gelu(arch)
    spec = ModelSpec(arch, arch, quick, path, "file", tag=tag, preprocess=tuple(sorted(preprocess.items())))
    if info.shapes is not None:
        _check_shapes(spec, info.shapes)
    return spec


def _known_activation(arch: str, info) -> tuple[bool | None, str, dict, str | None]:
    """(quick_gelu or None if unknowable, the evidence, preprocessing, tag) from the file's own identity."""
    from open_clip.pretrained import get_pretrained_cfg

    saved_arch = info.meta.get("arch")
    if saved_arch and family(saved_arch) != family(arch):
        raise BenchError(f"{info.path} was saved from model '{saved_arch}', not '{arch}': pass --model {saved_arch}.")
    built = info.meta.get("built") or {}
    if built.get("activation") in ("quick_gelu", "gelu"):
        pre = {k: built[k] for k in PREPROCESS_KEYS if k in built}
        return built["activation"] == "quick_gelu", "its saved build record", pre, built.get("pretrained_tag")
    if saved_arch:
        from open_clip.pretrained import list_pretrained_tags_by_model

        # Without a build record, the saved name decides unless the family has tags of both activations.
        if saved_arch.endswith(QUICKGELU) or not list_pretrained_tags_by_model(family(saved_arch)):
            return _config_quick_gelu(saved_arch), f"saved as '{saved_arch}'", {}, None
    if info.known_tag:
        tag_arch, tag = info.known_tag
        if family(tag_arch) != family(arch):
            raise BenchError(f"{info.path} is open_clip's published '{tag_arch}' weights '{tag}', not '{arch}': "
                             f"pass --model {family(tag_arch)}.")
        cfg = get_pretrained_cfg(tag_arch, tag)
        pre = {k: cfg[k] for k in PREPROCESS_KEYS if k in cfg}
        return bool(cfg.get("quick_gelu", False)), f"published as '{tag_arch}' '{tag}'", pre, tag
    return None, "", {}, None


def skeleton(spec: ModelSpec):
    """The architecture a spec builds, on the meta device: shapes and modules, no memory, no weights."""
    import torch
    import open_clip

    with torch.device("meta"), _quiet_random_init():
        return open_clip.create_model(spec.config, pretrained=None, device="meta", force_quick_gelu=spec.quick_gelu)


class _quiet_random_init:
    """open_clip warns "Model initialized randomly" for any model built without weights; for a shape-only
    skeleton that warning is false alarm, and users read it as their weights being ignored."""

    def filter(self, record) -> bool:
        return "initialized randomly" not in record.getMessage()

    def __enter__(self):
        import logging

        logging.getLogger().addFilter(self)

    def __exit__(self, *exc):
        import logging

        logging.getLogger().removeFilter(self)


# Keys open_clip's loader adds, drops or reshapes by itself.
_LENIENT = {"logit_bias", "logit_scale", "text.transformer.embeddings.position_ids"}


def _check_shapes(spec: ModelSpec, shapes: dict) -> None:
    from open_clip.model import convert_to_custom_text_state_dict

    if any(k.startswith("image_encoder.model.") for k in shapes):  # MobileCLIP layout: open_clip converts it
        return
    model = skeleton(spec)
    if "positional_embedding" in shapes and not hasattr(model, "positional_embedding"):
        shapes = convert_to_custom_text_state_dict(shapes)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = [f"{k}: file {tuple(shapes[k])} vs model {expected[k]}" for k in expected
                if k in shapes and k not in _LENIENT and tuple(shapes[k]) != expected[k]]
    problems += [f"missing {k}" for k in expected if k not in shapes and k not in _LENIENT]
    problems += [f"unexpected {k}" for k in shapes if k not in expected and k not in _LENIENT]
    if problems:
        fits = matching_archs(shapes)
        fix = f"pass --model {' or '.join(fits[:4])}" if fits else "pass the --model this checkpoint was trained as"
        raise BenchError(f"{spec.weights} does not fit model '{spec.arch}' ({len(problems)} differences, e.g. "
                         f"{'; '.join(problems[:3])}): {fix}.")


def matching_archs(shapes: dict) -> list[str]:
    """Registered ViT configs whose tower sizes match a state dict's shapes (a hint for the fix)."""
    import open_clip

    try:
        width, _, patch, _ = shapes["visual.conv1.weight"]
        grid = round((shapes["visual.positional_embedding"][0] - 1) ** 0.5)
        text_key = "token_embedding.weight" if "token_embedding.weight" in shapes else "text.token_embedding.weight"
        found = {"embed_dim": shapes["visual.proj"][1], "v_width": width, "patch": patch, "image": grid * patch,
                 "v_layers": _count_blocks(shapes, "visual.transformer.resblocks."), "t_width": shapes[text_key][1]}
    except (KeyError, ValueError, IndexError):
        return []
    fits = []
    for name in model_names():
        cfg = open_clip.get_model_config(name) or {}
        v, t = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
        size = v.get("image_size")
        have = {"embed_dim": cfg.get("embed_dim"), "v_width": v.get("width"), "patch": v.get("patch_size"),
                "image": size[0] if isinstance(size, (list, tuple)) else size, "v_layers": v.get("layers"),
                "t_width": t.get("width")}
        if have == found:
            fits.append(name)
    return fits


def _count_blocks(shapes: dict, prefix: str) -> int:
    return len({k[len(prefix):].split(".", 1)[0] for k in shapes if k.startswith(prefix)})


def describe_built(model, spec: ModelSpec) -> dict:
    """The model as actually built (activation read from its modules), for MLflow params and checkpoints."""
    from torch import nn
    from open_clip.transformer import QuickGELU


    kinds = {type(m) for m in model.modules()}
    activation = "quick_gelu" if QuickGELU in kinds else "gelu" if nn.GELU in kinds else "other"
    pp = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    size = getattr(model.visual, "image_size", pp.get("size"))
    return {"arch": spec.arch, "config": spec.config, "activation": activation,
            "image_size": list(size) if isinstance(size, (list, tuple)) else size,
            "mean": [float(x) for x in pp.get("mean", ())], "std": [float(x) for x in pp.get("std", ())],
            "interpolation": pp.get("interpolation"), "resize_mode": pp.get("resize_mode"),
            "weights": weights_identity(spec.weights), "weights_source": spec.source, "pretrained_tag": spec.tag}


def checkpoint_metadata(loaded: LoadedModel) -> dict:
    """Keys to save beside a checkpoint's state_dict so that loading it back rebuilds the same model."""
    return {"arch": loaded.arch, "built": dict(loaded.built)}


def load_model(arch: str, pretrained: str | None = None, device: str = "cpu") -> LoadedModel:
    import open_clip

    from bench.model.offline import hub_offline, require_fetchable

    spec = resolve_model(arch, pretrained)
    pre = dict(spec.preprocess)
    # A tag not cached and not downloadable fails now (one quick check), not after a minute of retries;
    # cached weights load without asking the network.
    status = require_fetchable(spec)
    try:
        with hub_offline() if status.state == "cached" else contextlib.nullcontext():
            model, train_tf, eval_tf = open_clip.create_model_and_transforms(
                spec.config, pretrained=spec.weights, device=device, weights_only=False,
                force_quick_gelu=spec.quick_gelu, image_mean=pre.get("mean"), image_std=pre.get("std"),
                image_interpolation=pre.get("interpolation"), image_resize_mode=pre.get("resize_mode"),
            )
    except RuntimeError as exc:  # open_clip raises RuntimeError for unknown tags and failed downloads
        raise BenchError(
            f"Could not load pretrained weights '{spec.weights}' for model '{arch}': {exc}\n"
            "This machine may be offline. Download the checkpoint file elsewhere (open_clip's pretrained URL or "
            "the HF hub) and pass it with --pretrained /path/to/checkpoint.pt."
        ) from exc
    except Exception as exc:  # network errors surface under many types (requests, HF hub, OSError)
        if "onnect" in str(exc) or "offline" in str(exc).lower() or isinstance(exc, OSError):
            raise BenchError(
                f"Could not download pretrained weights '{spec.weights}' for model '{arch}' (offline?): {exc}\n"
                "Download the checkpoint file elsewhere and pass it with --pretrained /path/to/checkpoint.pt."
            ) from exc
        raise
    return LoadedModel(model, train_tf, eval_tf, open_clip.get_tokenizer(spec.config), arch, spec.weights,
                       built=describe_built(model, spec))


def clip_state_dict(model) -> dict:
    """A CPU copy of the CLIP weights in the form open_clip's load_checkpoint accepts back."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
