"""`torchrun ... -m bench.cli.torchrun [bench run options]`: a user's own torchrun (one node or many) runs every
training job of the plan, each across all the processes torchrun started."""
from __future__ import annotations

import logging
import sys

from bench.errors import BenchError
from bench.launch.processes import configure_logging, run_rank

log = logging.getLogger(__name__)


def main(argv=None) -> int:
    """`torchrun ... -m bench.cli.torchrun [bench run options]`: every training job of the plan, each across all the
    processes torchrun started (on one or many nodes; BENCH_HOME on storage every node sees). WiSE-FT and the
    report come from a later `bench run` with the same options, which finds these jobs done."""
    import torch.distributed as dist

    from bench.cli.main import build_parser
    from bench.runtime.distributed import init_process_group
    from bench.jobs.plan import plan_from_args
    from bench.runtime.host import pick_device
    from bench.sweeps.cli import runtime_from
    from bench.tracking.runs import MlflowTracker
    from bench.tracking.store import tracking_uri

    args = build_parser().parse_args(["run", *(sys.argv[1:] if argv is None else argv)])
    try:
        plan = plan_from_args(args, wise_ft=False, runtime=runtime_from(args))
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    rank = init_process_group(pick_device(args.device).type)
    configure_logging(rank.rank)
    failed = 0
    try:
        for job in plan.jobs:
            if not _trains(job):
                continue  # zero-shot and probes need no process group: `bench run` evaluates them
            tracker = MlflowTracker(job.experiment, tracking_uri()) if rank.main else None
            try:
                run_rank(job, tracker, wait=True)
            except BenchError as exc:
                failed += 1
                log.error("== %s FAILED: %s", job.display_name, exc)
    finally:
        dist.destroy_process_group()
    return 1 if failed else 0


def _trains(job) -> bool:
    from bench.methods import METHODS

    return METHODS.get(job.method).trains


if __name__ == "__main__":
    sys.exit(main())
