"""A DataLoader whose workers' `BenchError`s reach the user as the one-line error they are.

PyTorch re-raises an exception from a worker process as the same type with the worker's whole traceback in
its message ("Caught BenchError in DataLoader worker process 0. Original Traceback ..."), so a corrupt image
read with `--workers 1` printed a traceback where `--workers 0` prints one line. The original message is the
traceback's last entry; it is taken back out here.
"""
from __future__ import annotations

from torch.utils.data import DataLoader

from bench.errors import BenchError

WORKER_MARK = "in DataLoader worker process"


def unwrap_worker_error(exc: BenchError) -> BenchError:
    """The BenchError a worker raised, without the worker's traceback; `exc` itself when it is not wrapped."""
    text = str(exc)
    name = f"{type(exc).__module__}.{type(exc).__qualname__}: "
    if not text.startswith("Caught ") or WORKER_MARK not in text.split("\n", 1)[0] or name not in text:
        return exc
    return type(exc)(text.rsplit(name, 1)[1].strip())


class Loader(DataLoader):
    def __iter__(self):
        try:
            yield from super().__iter__()
        except BenchError as exc:
            raise unwrap_worker_error(exc) from None
