"""Inter-process locks under BENCH_HOME/locks: one per job, one for creating the MLflow store.

`flock` locks belong to an open file description: the kernel drops them when their process dies, however it
dies, so a lock left by a killed process is never stale. The holder's pid and host are written into the
file for `bench status` and for humans; they are information, not the lock.
"""
from __future__ import annotations

import fcntl
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path


def lock_dir() -> Path:
    from bench.config import bench_home

    return bench_home() / "locks"


class FileLock:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the lock; False when non-blocking (or timed out) and another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not blocking or (deadline is not None and time.monotonic() > deadline):
                    os.close(fd)
                    return False
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def busy(self) -> bool:
        """True when another process holds the lock right now (read-only probe)."""
        if self.held or not self.path.is_file():
            return False
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def holder(self) -> str:
        try:
            return self.path.read_text().strip()
        except OSError:
            return "?"


def job_lock(run_key: str) -> FileLock:
    return FileLock(lock_dir() / f"job-{run_key}.lock")


@contextmanager
def exclusive(name: str):
    """`with exclusive("mlflow-store"):` serialises a short critical section across processes."""
    lock = FileLock(lock_dir() / f"{name}.lock")
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
