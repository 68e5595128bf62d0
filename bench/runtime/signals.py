"""SIGTERM (preemption, `kill`, a cluster manager) ends a job the way Ctrl-C does: the run is marked KILLED,
the lock is released and the job resumes from its last checkpoint on the next launch."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM; a KeyboardInterrupt, so every interrupt path handles it."""

    exit_code = 143


def _raise(signum, frame):
    raise Terminated(f"signal {signum}")


@contextmanager
def terminate_as_interrupt():
    """Within the block, SIGTERM raises Terminated (main thread only: Python delivers signals there, and
    Ray worker threads keep Ray's own handling)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
