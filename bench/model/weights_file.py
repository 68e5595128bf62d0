"""What a local checkpoint file holds, read cheaply and without building a model.

Torch zip files are memory-mapped and safetensors files are read header-only, so inspecting a
350 MB ViT-B/16 checkpoint costs milliseconds; plan building can afford it before any work.
Anything that is not a readable checkpoint (text, garbage, truncated) is a BenchError that says so.
"""
from __future__ import annotations

import hashlib
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench.errors import BenchError
from bench.hashing import file_sha256

# Keys this project writes beside "state_dict" (engine's selected.pt, `bench pretrain`): kept as metadata.
META_KEYS = ("arch", "built", "epoch", "method")
_SHA_CACHE: dict[tuple[str, int, float], str] = {}


@dataclass
class CheckpointInfo:
    path: str
    meta: dict = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] | None = None  # None: unknown (TorchScript archive, or pickled objects)
    torchscript: bool = False
    known_tag: tuple[str, str] | None = None  # (open_clip model, tag) these exact weights were published as


def _refuse(path: str, why: str) -> BenchError:
    return BenchError(f"{path} is not a usable checkpoint: {why}. Pass --pretrained with an open_clip checkpoint "
                      "(.pt/.bin from torch.save, or .safetensors), or re-download/re-save the file.")


def read_checkpoint(path: str) -> CheckpointInfo:
    p = Path(path)
    size = p.stat().st_size
    if size < 8:
        raise _refuse(path, f"the file has only {size} bytes")
    with open(p, "rb") as f:
        head = f.read(16)
    info = CheckpointInfo(path=str(path))
    if head[:4] == b"PK\x03\x04":
        _read_zip(p, info)
    elif head[:1] == b"\x80":  # pickle protocol marker: torch's legacy (pre-zip) format
        _read_torch(p, info, mmap=False)
    elif _looks_safetensors(head, size):
        _read_safetensors(p, info)
    else:
        raise _refuse(path, "it is neither a torch zip/pickle file nor a safetensors file")
    info.known_tag = identify_published(p)
    return info


def _looks_safetensors(head: bytes, size: int) -> bool:
    n = struct.unpack("<Q", head[:8])[0]
    return 0 < n < size and head[8:9] == b"{"


def _read_zip(p: Path, info: CheckpointInfo) -> None:
    try:
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as exc:  # a truncated zip loses its central directory
        raise _refuse(str(p), f"the archive is damaged or truncated ({exc})") from exc
    if any(n.endswith("/constants.pkl") for n in names):  # TorchScript (OpenAI's original release format)
        info.torchscript = True
        return
    _read_torch(p, info, mmap=True)


def _read_torch(p: Path, info: CheckpointInfo, mmap: bool) -> None:
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:
        if "Weights only load failed" in str(exc):
            return  # a real checkpoint holding arbitrary Python objects: loadable, shapes unknown here
        raise _refuse(str(p), f"torch cannot read it ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc
    _take_state_dict(obj, info)


def _read_safetensors(p: Path, info: CheckpointInfo) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as f:
            info.shapes = _strip_module({k: tuple(f.get_slice(k).get_shape()) for k in f.keys()})
    except Exception as exc:
        raise _refuse(str(p), f"safetensors cannot read it ({exc})") from exc


def _take_state_dict(obj, info: CheckpointInfo) -> None:
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        info.meta = {k: obj[k] for k in META_KEYS if k in obj}
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise _refuse(info.path, "it holds no state dict of tensors")
    info.shapes = _strip_module({k: tuple(v.shape) for k, v in obj.items() if isinstance(v, torch.Tensor)})


def _strip_module(shapes: dict) -> dict:
    # DataParallel/DDP checkpoints prefix every key; open_clip strips it on load too.
    if shapes and next(iter(shapes)).startswith("module."):
        return {k[7:]: v for k, v in shapes.items()}
    return shapes


def identify_published(p: Path) -> tuple[str, str] | None:
    """The open_clip (model, tag) whose published file this is: the HF hub cache path names the repo, a
    release URL names the file and its SHA-256 (full for OpenAI, an 8-hex prefix for open_clip releases)."""
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained

    parts = set(p.resolve().parts)
    for arch, tag in list_pretrained():
        cfg = get_pretrained_cfg(arch, tag)
        repo = cfg.get("hf_hub", "").strip("/")
        if repo and "models--" + repo.replace("/", "--") in parts:
            return arch, tag
        url = cfg.get("url", "")
        if not url or url.rsplit("/", 1)[-1] != p.name:
            continue
        digest = _url_digest(url)
        if digest and _sha256(p).startswith(digest):
            return arch, tag
    return None


def _url_digest(url: str) -> str | None:
    parent, name = url.rsplit("/", 2)[-2:]
    if re.fullmatch(r"[0-9a-f]{64}", parent):
        return parent
    m = re.search(r"-([0-9a-f]{8})\.\w+$", name)
    return m.group(1) if m else None


def _sha256(p: Path) -> str:
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = file_sha256(p)
    return _SHA_CACHE[key]


def weights_identity(pretrained) -> str | None:
    """A checkpoint file is identified by its size and the digest of its first MiB, not by its path."""
    if pretrained is None:
        return None
    path = Path(str(pretrained))
    if path.is_file():
        with open(path, "rb") as f:
            head = hashlib.sha256(f.read(1 << 20)).hexdigest()[:16]
        return f"file:{path.stat().st_size}:{head}"
    return str(pretrained)
