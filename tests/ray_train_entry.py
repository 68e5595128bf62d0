"""Toy worker entries for tests/test_ray_train.py (run by Ray Train workers, so importable by module name)."""
from __future__ import annotations

import json
import os
from pathlib import Path


def toy(payload: dict, report) -> None:
    """World size and an all_reduce checked; rank 0 reports `epochs` epochs and stops when told to; each rank
    writes a marker with what it saw."""
    import torch
    import torch.distributed as dist

    rank, world = dist.get_rank(), dist.get_world_size()
    assert world == payload["world"], (world, payload)
    t = torch.tensor([float(rank + 1)])
    dist.all_reduce(t)
    stopped_at = None
    for epoch in range(1, payload["epochs"] + 1):
        if payload.get("fail_rank") == rank and epoch == payload.get("fail_epoch", 1):
            raise ValueError(f"rank {rank} fails at epoch {epoch}")
        stop = torch.tensor([0])
        if rank == 0:
            stop[0] = int(report({"sum": t.item(), "world": world, "home": os.environ.get("BENCH_HOME"),
                                       "loss": payload.get("bias", 0.0) + 1.0 / epoch}, epoch))
        dist.broadcast(stop, 0)
        if stop.item():
            stopped_at = epoch
            break
    out = Path(payload["out"])
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{rank}.json").write_text(json.dumps({"sum": t.item(), "world": world, "stopped_at": stopped_at,
                                                      "env": os.environ.get("BENCH_TEST_MARK")}))


class Boom(Exception):
    """What a test's reporter raises."""


class RaisingReporter:
    def report(self, metrics, epoch):
        raise Boom(f"reporter fails at epoch {epoch}")


def tune_trial(config, env=None):
    """A Tune function trial as sweeps/ray_executor.py's `_trial`, with the toy entry on 2 CPU workers."""
    os.environ.update(env)
    from bench.sweeps.ray_executor import _TuneReporter
    from bench.sweeps.ray_train import run_torch_trial

    reporter = _TuneReporter()
    run_torch_trial("ray_train_entry:toy", config["payload"], 2, False, None, reporter,
                    os.path.join(env["BENCH_HOME"], "ray_results"), f"train-{config['name']}")
    if reporter.stopped:
        raise SystemExit(0)
