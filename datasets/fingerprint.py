"""Cheap fingerprints of data on disk, for `DatasetSource.fingerprint()`.

Two strengths, chosen per loader:
- `file_tree`: every file under the given paths with its size and modification time (ns). A user's folder
  dataset is small enough to stat each run, and an image edited in place, added, removed or renamed changes it.
- `dir_tree`: the dataset's own layout down to `depth` levels: directories with their modification times,
  files above the last level with size and mtime. For the real benchmarks (ImageNet's 1.28M files, WILDS'
  flat 200k-image folder) it costs a few thousand stats, not a million. A directory's mtime changes when an
  entry in it is added, removed or renamed, so a changed file list is caught one level below `depth` too;
  an image overwritten in place (same name) is not: those datasets are fixed releases, and each loader adds
  its own version (WILDS release, toy world version) to the hash.
"""
from __future__ import annotations

import os
from pathlib import Path



def file_tree(root: Path, names=None) -> list[tuple]:
    """(relative path, size, mtime_ns) of every file under root (or under root/<name> for each of `names`), sorted."""
    root = Path(root)
    out = []
    stack = [root / n for n in names] if names is not None else [root]
    while stack:
        here = stack.pop()
        if here.is_file():
            st = here.stat()
            out.append((here.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
            continue
        if not here.is_dir():
            continue
        with os.scandir(here) as it:
            for e in it:
                if e.is_dir(follow_symlinks=True):
                    stack.append(Path(e.path))
                else:
                    st = e.stat()
                    out.append((Path(e.path).relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    return sorted(out)


def dir_tree(root: Path, depth: int) -> list[tuple]:
    """(relative path, size or -1 for a directory, mtime_ns) of root and its entries down to `depth` levels;
    at the last level only directories are stat-ed, so a flat folder of images costs one listing, no stats."""
    root = Path(root)
    st = root.stat()
    out = [(".", -1, st.st_mtime_ns)]

    def walk(here: Path, level: int) -> None:
        with os.scandir(here) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            is_dir = e.is_dir(follow_symlinks=True)
            if not is_dir and level == depth:
                continue
            st = e.stat()
            rel = Path(e.path).relative_to(root).as_posix()
            out.append((rel, -1 if is_dir else st.st_size, st.st_mtime_ns))
            if is_dir and level < depth:
                walk(Path(e.path), level + 1)

    if depth > 0:
        walk(root, 1)
    return out
