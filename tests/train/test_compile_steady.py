"""--compile without recompiles in steady state (issue 21, item 5): under compile the ragged last training batch is
dropped and evaluation remainders are padded, so a job whose set sizes do not divide by its batch sizes captures
exactly the graphs of one that divides evenly (one per tower and mode), and none after its first epoch. Dynamo's
guards and recompiles do not depend on the backend, so the test compiles with `eager` (seconds, not minutes)."""
from __future__ import annotations

import torch
from helpers import make_job

from bench.jobs.lifecycle import train_one


def _frames() -> int:
    from torch._dynamo.utils import counters

    return counters["frames"]["total"]  # frames dynamo compiled: a recompile adds one


class Snapshot:
    """An executor's reporter that records dynamo's compiled frames after each epoch."""

    def __init__(self):
        self.after = {}

    def report(self, metrics, epoch):
        self.after[epoch] = _frames()
        return False


def _compiled_job(folder_root, batch_size: int, eval_batch_size: int, seed: int) -> tuple[dict, int]:
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    job = make_job(folder_root, "ft", seed=seed, epochs=3, batch_size=batch_size)
    job.runtime.update(compile=True, eval_batch_size=eval_batch_size)
    reporter = Snapshot()
    assert train_one(job, reporter=reporter)["sel/epochs_run"] == 3
    return reporter.after, _frames()


def test_no_recompiles_for_ragged_batches_or_after_the_first_epoch(bench_home, folder_root, monkeypatch):
    monkeypatch.setenv("BENCH_COMPILE_BACKEND", "eager")
    # 40 training images, sets of 16: batches of 8 and 4 divide evenly; 16 and 6 leave a batch of 8 and one of 4.
    _, even = _compiled_job(folder_root, 8, 4, seed=0)
    after, ragged = _compiled_job(folder_root, 16, 6, seed=1)
    assert even > 0 and ragged == even, (even, ragged)
    assert after[1] == after[2] == ragged, after
