"""`bench data check`: for each dataset a suite uses, whether it is found under the data root, its image and
class counts against the full dataset's, and any layout problem; for a missing one, the expected path, layout
and where it is obtained. Few-shot options are ignored: the check is about the data on disk.
"""
from __future__ import annotations

from pathlib import Path

from bench.datasets import DATASETS
from bench.errors import BenchError

FEW_SHOT_OPTIONS = {"shots", "shot_seed"}


def suite_datasets(suite: dict) -> list[dict]:
    """Unique dataset specs ({name, **options}) of a validated suite, in order of first use."""
    seen, out = set(), []
    for task in suite["tasks"].values():
        for spec in [task["dataset"]] + [s["dataset"] for s in [task["val"], *task["id"], *task["ood"]]]:
            spec = {k: v for k, v in spec.items() if k not in FEW_SHOT_OPTIONS}
            key = repr(sorted(spec.items()))
            if key not in seen:
                seen.add(key)
                out.append(spec)
    return out


def real_dataset_names() -> list[str]:
    return [n for n in DATASETS.names() if getattr(DATASETS.get(n), "info", None) is not None]


def _sizes(source) -> dict[str, int]:
    if hasattr(source, "split_sizes"):
        return source.split_sizes()
    return {s: len(source.samples(s)) for s in source.split_names()}


def _n_classes(source) -> int:
    if hasattr(source, "ds"):  # wilds
        return int(len(set(source.ds.y_array.tolist())))
    return len({y for s in source.split_names() for _, y in source.samples(s)})


def check_dataset(spec: dict, root: Path) -> dict:
    """One row of the report: name, status (ok | differs | missing | builtin), path, notes."""
    name = spec["name"]
    cls = DATASETS.get(name)
    info = getattr(cls, "info", None)
    if info is None:
        return {"name": name, "status": "builtin", "path": "", "notes": ["generated or user folder; nothing to check"]}
    options = {k: v for k, v in spec.items() if k != "name"}
    if "root" in options:
        r = Path(str(options["root"])).expanduser()
        options["root"] = r if r.is_absolute() else root / r
    else:
        options["root"] = root
    try:
        source = cls(**options)
        sizes = _sizes(source)
        n_classes = _n_classes(source)
        problems = source.problems()
    except BenchError as exc:
        return {"name": name, "status": "missing", "path": str(Path(options["root"]) / info.dirname), "notes": [str(exc)]}
    notes, differs = [], bool(problems)
    counts = []
    for key, expected in info.expected.items():
        found = sum(sizes.values()) if key == "all" else sizes.get(key, 0)
        differs |= found != expected
        counts.append(f"{key} {found:,}" + ("" if found == expected else f" (expected {expected:,})"))
    others = [f"{s} {n:,}" for s, n in sizes.items() if s not in info.expected]
    notes.append("images: " + ", ".join(counts + others))
    if info.n_classes:
        differs |= n_classes != info.n_classes
        notes.append(f"classes with images: {n_classes}" + ("" if n_classes == info.n_classes else f" (expected {info.n_classes})"))
    notes += [f"problem: {p}" for p in problems]
    return {"name": name, "status": "differs" if differs else "ok", "path": str(source.dir), "notes": notes}


def format_rows(rows: list[dict], root: Path) -> str:
    lines = [f"data root: {root}"]
    for r in rows:
        lines.append(f"{r['name']:<16} {r['status'].upper():<8} {r['path']}")
        for note in r["notes"]:
            lines += [f"    {line}" for line in note.splitlines()]
    missing = [r["name"] for r in rows if r["status"] == "missing"]
    differs = [r["name"] for r in rows if r["status"] == "differs"]
    summary = f"{len(rows)} dataset(s): {len(missing)} missing, {len(differs)} differ from the full datasets"
    if differs:
        summary += " (a fake or partial copy; runs work, numbers are not comparable to the paper)"
    return "\n".join(lines + [summary])


def check(suite: dict | None, root: Path) -> tuple[str, int]:
    """The report for a loaded suite (None: every real dataset) and an exit code (1 when a dataset is missing or
    unreadable)."""
    if suite:
        specs = suite_datasets(suite)
    else:
        specs = [{"name": n} for n in real_dataset_names()]
    rows = [check_dataset(spec, root) for spec in specs]
    return format_rows(rows, root), int(any(r["status"] == "missing" for r in rows))
