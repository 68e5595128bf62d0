"""Room on disk for a job's checkpoints, checked before training starts."""
from __future__ import annotations

import shutil
from pathlib import Path

from bench.errors import BenchError


def existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def checkpoint_need_bytes(model, kept: int = 2) -> int:
    """Disk a job needs for its checkpoints: each holds the weights and AdamW's two moments (3x the parameter
    bytes); `kept` checkpoints plus one being written, plus `selected.pt` (1x)."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return weights * (3 * (kept + 1) + 1)


def check_free_disk(path, need_bytes: int) -> None:
    """Refuse to start a job whose checkpoint would not fit on the disk that holds `path`."""
    where = existing_ancestor(Path(path).resolve())
    free = shutil.disk_usage(where).free
    if free < need_bytes:
        raise BenchError(f"Not enough free disk for checkpoints under {path}: need about {_human(need_bytes)}, "
                         f"{_human(free)} free on {where}. Free some space, or set BENCH_HOME to a larger disk.")
