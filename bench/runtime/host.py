"""Device choice, seeding and environment facts recorded with every run."""
from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import numpy as np
import torch

from bench.hashing import digest


def pick_device(requested: str | None = None) -> torch.device:
    if requested and requested != "auto":
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def derive_seed(*parts) -> int:
    """A 31-bit seed from any parts (job seed, epoch, purpose), stable across processes and Python runs."""
    return int(digest(*parts)[:8], 16) & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def environment_tags(device: torch.device) -> dict:
    tags = {"bench.torch": torch.__version__, "bench.device": str(device), "bench.threads": torch.get_num_threads()}
    if device.type == "cuda":
        tags["bench.gpu"] = torch.cuda.get_device_name(device)
    return tags


def default_workers() -> int:
    """Loader processes: none on a 2-core machine (a worker would steal a core from the model and lose
    in-process image caches each epoch); otherwise up to 8, leaving one core for the main process."""
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(8, cores - 1)


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the caller binds it soon; a race is retried by the caller)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
