"""What a job's body returns and what it may ask of the world: the contract between a training body (the
engine's TrainBody, WiSE-FT's derived evaluation) and the job lifecycle (bench/jobs/lifecycle.py) that runs it.
Training never sees the tracker, the job directory or the executor: only this context."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass
class Result:
    summary: dict                       # the selected epoch's metrics, under `sel/`
    history: list = field(default_factory=list)   # per-epoch metrics, kept as metrics.jsonl
    stopped: bool = False               # stopped early by the executor: the run ends KILLED, no done marker


class Context(Protocol):
    """What a body may do to the world: log metrics, checkpoint, keep selected weights, report progress."""

    writer: bool                 # rank 0 of a multi-process job, or the only process: the one that writes
    resume: dict | None          # the checkpoint to resume from, or None for a fresh start
    resume_path: Path | None
    steps: int                   # optimizer steps this attempt executed (the engine counts, the lifecycle records)

    @property
    def job(self): ...
    def log_metrics(self, metrics: dict, step: int) -> None: ...
    def log_text(self, text: str, name: str) -> None: ...
    def set_tags(self, tags: dict) -> None: ...
    def report(self, metrics: dict, epoch: int) -> bool: ...
    def stage_selected(self, obj: dict) -> None: ...
    def save_checkpoint(self, state: dict) -> None: ...
    def save_selected(self, obj: dict) -> None: ...
