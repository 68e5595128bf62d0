"""Jobs: one (task, method, hparams, seed, model) each, keyed by a hash of its semantic fields only.

The run_key never covers paths, executor, resources or tracking URI, so moving data or BENCH_HOME, or
switching executors, keeps finished work valid (DomainBed hashed data_dir; we don't).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.config import bench_home
from bench.hashing import stable_hash
from bench.model.weights_file import weights_identity

# Bumped when the same job would give other numbers: 2 = per-sample seeded augmentation (a data stream
# independent of --workers and --gpus), so a study never mixes runs of the two streams.
PROTOCOL_VERSION = 2
PATH_KEYS = {"root"}


def _strip_paths(obj):
    if isinstance(obj, dict):
        return {k: _strip_paths(v) for k, v in obj.items() if k not in PATH_KEYS}
    if isinstance(obj, list):
        return [_strip_paths(v) for v in obj]
    return obj


@dataclass
class Job:
    suite: str
    experiment: str
    task: str
    task_spec: dict
    method: str
    hparams: dict
    seed: int
    model: dict                                   # {arch, pretrained}
    runtime: dict = field(default_factory=dict)   # workers, device, eval_batch_size: not hashed
    extra: dict = field(default_factory=dict)     # derived jobs: base run, alpha (hashed)
    tags: dict = field(default_factory=dict)      # extra MLflow tags (sweep key, parent run): not hashed

    def semantic(self) -> dict:
        return {
            "protocol": PROTOCOL_VERSION,
            "task": self.task,
            "task_spec": _strip_paths(self.task_spec),
            "method": self.method,
            "hparams": self.hparams,
            "seed": self.seed,
            "model": {"arch": self.model["arch"], "weights": weights_identity(self.model.get("pretrained"))},
            "extra": self.extra,
        }

    @property
    def run_key(self) -> str:
        return stable_hash(self.semantic())

    @property
    def run_dir(self) -> Path:
        return bench_home() / "jobs" / self.run_key

    @property
    def display_name(self) -> str:
        alpha = f"-a{self.extra['alpha']:.1f}" if "alpha" in self.extra else ""
        base = f"({self.extra['base_method']})" if "base_method" in self.extra else ""
        return f"{self.task}-{self.method}{base}{alpha}-s{self.seed}"
