"""Checkpoints that survive kills and bad disks: written atomically, checksummed, the previous one kept.

File format: the bytes of `torch.save(obj)` followed by a trailer of MAGIC + sha256(payload). A file whose
trailer is missing or whose digest does not match (truncated, zeroed, half-copied) is refused on load, and
`load_latest` falls back to `<name>.prev`. Saving moves the current file to `.prev` before the new one
takes its place, so a kill at any instant leaves at least one good checkpoint (or none, before the first).
"""
from __future__ import annotations

import errno
import hashlib
import io
import logging
import time
from pathlib import Path

from bench.errors import BenchError
from bench.fsutil import atomic_write_bytes

MAGIC = b"\nBENCH-CKPT-SHA256:"
log = logging.getLogger(__name__)


class CorruptCheckpoint(Exception):
    """The file is not a complete checkpoint written by `save`."""


def prev_path(path: Path) -> Path:
    return path.with_name(path.name + ".prev")


def save(obj, path: Path) -> None:
    """Write `obj` to `path` with a checksum; the file it replaces becomes `path.prev`."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getbuffer()
    digest = hashlib.sha256(payload).digest()
    path = Path(path)
    try:
        if path.is_file():
            path.replace(prev_path(path))
        atomic_write_bytes(path, lambda f: (f.write(payload), f.write(MAGIC + digest)))
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise BenchError(f"No space left on the device for the checkpoint {path} ({len(payload) / 2**20:.0f} MiB "
                             "needed). Free disk space or point BENCH_HOME elsewhere, then rerun the same command: the "
                             "job resumes from its last good checkpoint.") from None
        raise


def load(path: Path):
    """The object saved at `path`; CorruptCheckpoint when the file is incomplete or altered."""
    import torch

    data = Path(path).read_bytes()
    cut = len(data) - len(MAGIC) - 32
    if cut < 0 or data[cut:cut + len(MAGIC)] != MAGIC:
        raise CorruptCheckpoint(f"{path}: no checksum trailer (truncated or not written by bench)")
    payload = memoryview(data)[:cut]
    if hashlib.sha256(payload).digest() != data[cut + len(MAGIC):]:
        raise CorruptCheckpoint(f"{path}: checksum mismatch")
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
    except Exception as exc:  # a payload that hashes right but does not unpickle: written by another version
        raise CorruptCheckpoint(f"{path}: {type(exc).__name__}: {exc}") from None


def set_aside(path: Path) -> Path:
    """Move a bad file out of the way (kept for inspection), returning its new name."""
    target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    path.replace(target)
    return target


def load_latest(path: Path):
    """The newest good checkpoint among `path` and `path.prev`, or None. Bad files are set aside with a
    warning; the job then resumes from the previous one or restarts cleanly."""
    for candidate in (Path(path), prev_path(Path(path))):
        if not candidate.is_file():
            continue
        try:
            return load(candidate)
        except CorruptCheckpoint as exc:
            kept = set_aside(candidate)
            log.warning("checkpoint %s is unusable (%s); moved to %s", candidate.name, exc, kept.name)
    return None


def remove(path: Path) -> None:
    for candidate in (Path(path), prev_path(Path(path))):
        candidate.unlink(missing_ok=True)
