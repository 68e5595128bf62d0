"""Whether the weights of a plan's jobs can be had on this machine now: one line per model for the dry run, and
the offline errors that stop a launch before any job starts."""
from __future__ import annotations

from bench.model.factory import resolve_model
from bench.model.offline import offline_hint, weights_status


def weights_lines(jobs) -> list[str]:
    """One line per distinct model/weights of a job list, with how many jobs use it and where the weights
    are (for `bench run --dry-run` and the start of a run)."""
    groups: dict[tuple, list] = {}
    for job in jobs:
        groups.setdefault((job.model["arch"], job.model.get("pretrained")), []).append(job)
    lines = []
    for (arch, pretrained), members in groups.items():
        spec = resolve_model(arch, pretrained)
        status = weights_status(spec)
        if spec.source == "tag":
            lines.append(f"weights {arch} {pretrained} ({len(members)} job(s)): {status.brief()}")
    return lines


def unfetchable(jobs) -> list[str]:
    """The offline errors of a job list's weights (one per distinct model/tag), empty when all can be had."""
    errors, seen = [], set()
    for job in jobs:
        key = (job.model["arch"], job.model.get("pretrained"))
        if key in seen:
            continue
        seen.add(key)
        spec = resolve_model(*key)
        status = weights_status(spec)
        if status.state == "offline":
            errors.append(offline_hint(spec.arch, spec.weights, status))
    return errors
