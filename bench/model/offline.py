"""Where a pretrained tag's weights come from, and whether they can be had on this machine now.

open_clip resolves a tag ("openai", "laion2b_s34b_b79k") to a Hugging Face hub file (or, without a hub
entry, a URL) and downloads it. Offline, huggingface_hub retries each candidate file for about 25 s and
prints every retry twice (its logger and the root logger), so a missing file costs a minute before the
error. Here, instead:

    weights_status(spec)   local (a file, the bundled checkpoint, random init) | cached (in the HF hub cache
                           or open_clip's URL cache) | download (not cached, the host answers) | offline
                           (not cached and the host cannot be reached: one quick TCP connect, or
                           HF_HUB_OFFLINE=1 / BENCH_OFFLINE=1)
    require_fetchable(spec)   the BenchError with the fix, raised at once for "offline"
    hub_offline()          a context in which huggingface_hub reads its cache and never asks the network
                           (used to load cached weights: no HEAD request, no retries)

Nothing here downloads anything; the network is probed once per host and process.
"""
from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench.errors import BenchError

CONNECT_TIMEOUT_S = 1.5
_REACHABLE: dict[tuple[str, int], tuple[bool, str]] = {}
URL_CACHE = os.path.join("~", ".cache", "clip")  # open_clip's download_pretrained_from_url default


@dataclass(frozen=True)
class WeightsStatus:
    state: str  # "local", "cached", "download", "offline"
    where: str  # a path, or the hub repo / URL the weights would come from
    why: str = ""  # for "offline": what the network check found

    def brief(self) -> str:
        return {"local": f"local file {self.where}" if self.where else "random init",
                "cached": f"cached locally ({self.where})",
                "download": f"not cached: will download from {self.where}",
                "offline": f"not cached and cannot be fetched offline ({self.why})"}[self.state]


def _hub_candidates(hf_hub: str) -> tuple[str, list[str]]:
    """The repo id and the files open_clip tries, in its order (a safetensors alternative first)."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    repo, filename = os.path.split(hf_hub)
    filename = filename or HF_WEIGHTS_NAME
    names = []
    if filename == HF_WEIGHTS_NAME:
        names.append(HF_SAFE_WEIGHTS_NAME)
    elif filename.endswith((".bin", ".pth")):
        names.append(filename[:-4] + ".safetensors")
    return repo, names + [filename]


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def cached_file(cfg: dict) -> str | None:
    """The local file open_clip would load for a pretrained config without asking the network, or None."""
    if cfg.get("file"):
        return cfg["file"] if os.path.isfile(cfg["file"]) else None
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        repo, names = _hub_candidates(cfg["hf_hub"])
        for name in names:
            found = try_to_load_from_cache(repo, name)
            if isinstance(found, str) and os.path.isfile(found):
                return found
        return None
    if cfg.get("url"):
        path = os.path.join(os.path.expanduser(URL_CACHE), os.path.basename(cfg["url"]))
        return path if os.path.isfile(path) else None
    return None


def source_of(cfg: dict) -> str:
    if cfg.get("hf_hub"):
        return f"{hub_endpoint()}/{cfg['hf_hub'].rstrip('/')}"
    return cfg.get("url", "")


def forced_offline() -> str | None:
    """The environment variable that declares this machine offline, if one does."""
    from huggingface_hub import constants

    for var in ("BENCH_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return var
    return "HF_HUB_OFFLINE" if constants.is_offline_mode() else None


def reachable(url: str, timeout: float = CONNECT_TIMEOUT_S) -> tuple[bool, str]:
    """(True, "") when a TCP connection to the URL's host opens within `timeout`; probed once per host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (80 if parts.scheme == "http" else 443)
    key = (host, port)
    if key not in _REACHABLE:
        try:
            socket.create_connection(key, timeout=timeout).close()
            _REACHABLE[key] = (True, "")
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            if isinstance(exc, socket.timeout) or isinstance(exc, TimeoutError):
                reason = f"no answer in {timeout:g} s"
            _REACHABLE[key] = (False, f"{host}:{port} unreachable: {reason}")
    return _REACHABLE[key]


def weights_status(spec) -> WeightsStatus:
    """Where `spec`'s weights (a bench.model.factory.ModelSpec) come from, checked without downloading anything."""
    if spec.source != "tag":
        return WeightsStatus("local", spec.weights or "")
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(spec.config, spec.weights) or {}
    found = cached_file(cfg)
    if found:
        return WeightsStatus("cached", found)
    source = source_of(cfg)
    var = forced_offline()
    if var:
        return WeightsStatus("offline", source, f"{var} is set")
    ok, why = reachable(source)
    return WeightsStatus("download" if ok else "offline", source, why)


def offline_hint(arch: str, tag: str, status: WeightsStatus) -> str:
    return (f"Pretrained weights '{tag}' for model '{arch}' are not in the local cache and cannot be downloaded: "
            f"{status.why}. They come from {status.where}. Either download them on a machine with network "
            f"access (python -c \"import open_clip; open_clip.create_model('{arch}', pretrained='{tag}')\" fills the "
            "Hugging Face cache; copy ~/.cache/huggingface/hub here, or point HF_HUB_CACHE at it), or download the "
            "checkpoint file and pass it with --pretrained /path/to/checkpoint.pt.")


def require_fetchable(spec) -> WeightsStatus:
    status = weights_status(spec)
    if status.state == "offline":
        raise BenchError(offline_hint(spec.arch, spec.weights, status))
    return status


@contextlib.contextmanager
def hub_offline():
    """huggingface_hub in offline mode for the block: cached files load with no HEAD request and no retries."""
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


