"""open_clip models by name: pretrained tags, local checkpoint files, and the project's own configs.

`load_model(arch, pretrained)` returns a `LoadedModel` with the CLIP model, train/eval transforms and
tokenizer. `pretrained` is an open_clip tag ("openai", "laion400m_e31"), a local checkpoint path,
"default" (the arch's bundled checkpoint, e.g. toy-clip), or None/"none" for random init.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bench.errors import BenchError, unknown_name

CONFIG_DIR = Path(__file__).parent / "model_configs"
ASSET_DIR = Path(__file__).parent / "assets"
# Bundled checkpoints used when pretrained == "default".
DEFAULT_CHECKPOINTS = {"toy-clip": ASSET_DIR / "toy-clip.pt"}
NO_WEIGHTS = (None, "", "none", "None", "random")

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
            raise BenchError(f"The bundled checkpoint for '{arch}' is missing at {path}; run `bench pretrain` to create it.")
        return str(path)
    return str(pretrained)


def check_arch(arch: str) -> str:
    names = model_names()
    if arch not in names:
        raise unknown_name("model", arch, names)
    return arch


def check_pretrained(arch: str, pretrained: str | None) -> None:
    """Fail before any work on a tag open_clip does not know for this architecture."""
    import open_clip

    weights = resolve_pretrained(arch, pretrained)
    if weights is None or Path(weights).is_file():
        return
    if os.sep in weights or weights.endswith((".pt", ".bin", ".safetensors")):
        raise BenchError(f"Checkpoint file not found: {weights}. Pass --pretrained with an existing open_clip checkpoint file.")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if weights not in tags:
        raise unknown_name(f"pretrained tag for model '{arch}' (or pass a checkpoint file)", weights, tags)


def load_model(arch: str, pretrained: str | None = None, device: str = "cpu") -> LoadedModel:
    import open_clip

    check_arch(arch)
    weights = resolve_pretrained(arch, pretrained)
    is_file = weights is not None and (os.sep in weights or weights.endswith((".pt", ".bin", ".safetensors")))
    if is_file and not Path(weights).is_file():
        raise BenchError(f"Checkpoint file not found: {weights}. Pass --pretrained with an existing open_clip checkpoint file.")
    try:
        model, train_tf, eval_tf = open_clip.create_model_and_transforms(
            arch, pretrained=weights, device=device, weights_only=False
        )
    except RuntimeError as exc:  # open_clip raises RuntimeError for unknown tags and failed downloads
        raise BenchError(
            f"Could not load pretrained weights '{weights}' for model '{arch}': {exc}\n"
            "This machine may be offline. Download the checkpoint file elsewhere (open_clip's pretrained URL or "
            "the HF hub) and pass it with --pretrained /path/to/checkpoint.pt."
        ) from exc
    except Exception as exc:  # network errors surface under many types (requests, HF hub, OSError)
        if "onnect" in str(exc) or "offline" in str(exc).lower() or isinstance(exc, OSError):
            raise BenchError(
                f"Could not download pretrained weights '{weights}' for model '{arch}' (offline?): {exc}\n"
                "Download the checkpoint file elsewhere and pass it with --pretrained /path/to/checkpoint.pt."
            ) from exc
        raise
    return LoadedModel(model, train_tf, eval_tf, open_clip.get_tokenizer(arch), arch, weights)


def clip_state_dict(model) -> dict:
    """A CPU copy of the CLIP weights in the form open_clip's load_checkpoint accepts back."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
