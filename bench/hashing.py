"""The project's digests, one of each: of values (seeds, fingerprints, run keys) and of files (weights, selected
models). Each is stable across processes, machines and Python runs."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path


def digest(*parts) -> str:
    """16 hex digits of sha256 over the parts' repr."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def stable_hash(obj) -> str:
    """16 hex digits of sha256 over `obj` as sorted JSON (run keys, sweep keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
