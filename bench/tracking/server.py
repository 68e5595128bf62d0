"""The one `mlflow server` helper: started in its own process group, polled on /health until it answers, and
stopped as a group (SIGTERM, then SIGKILL). `bench ui` serves the store to a browser with it, and the Ray
executor serves a SQLite store to its trials through `local_server` (so a single process writes the database)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.config import bench_home
from bench.errors import BenchError
from bench.runtime.host import free_port
from bench.tracking.store import artifact_root, tracking_uri

QUIET = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


def start_server(uri: str, port: int, log=None, extra: tuple = ()) -> subprocess.Popen:
    """`mlflow server` for store `uri` on 127.0.0.1:`port`, in its own session (a Ctrl-C in the terminal reaches
    bench, which stops the server after recording states); its output goes to `log` (None: this terminal)."""
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job-runner processes
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
           "--port", str(port), "--default-artifact-root", artifact_root().resolve().as_uri(), *extra]
    stdout = {} if log is None else {"stdout": log, "stderr": subprocess.STDOUT}
    return subprocess.Popen(cmd, env=env, start_new_session=True, **stdout)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_ready(proc: subprocess.Popen, url: str, timeout: float) -> bool:
    """True once the server answers; False if it exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if answers(url):
            return True
        time.sleep(0.2)
    return False


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's group, SIGKILL if it lingers (uvicorn's workers are in the same group)."""
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            os.killpg(proc.pid, 0)  # the leader is gone; workers of the group may still be exiting
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return
        time.sleep(0.5)


class local_server:
    """`with local_server(uri) as http_uri:` serves a SQLite store through one `mlflow server` on
    127.0.0.1 (a free port) for the duration of the block, so that a single process writes the database.
    Any other URI is yielded unchanged. The server's log goes to $BENCH_HOME/logs/mlflow-server.log."""

    def __init__(self, uri: str | None = None, startup_timeout: float = 120.0):
        self.uri = uri or tracking_uri()
        self.timeout = startup_timeout
        self.proc = None
        self._quiet = None

    def __enter__(self) -> str:
        if not self.uri.startswith("sqlite:"):
            return self.uri
        for _ in range(3):  # a port taken between probing and binding: try another
            http_uri = self._start()
            if http_uri:
                # MLflow prints a link per finished run for http stores; this server's links die with it.
                self._quiet = os.environ.get(QUIET)
                os.environ[QUIET] = "true"
                return http_uri
        raise BenchError(f"Could not start a local MLflow server for {self.uri}; see {self.log_path}.")

    @property
    def log_path(self) -> Path:
        return bench_home() / "logs" / "mlflow-server.log"

    def _start(self) -> str | None:
        port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = start_server(self.uri, port, log, extra=("--workers", "1", "--uvicorn-opts",
                                                                 "--timeout-graceful-shutdown 2"))
        url = f"http://127.0.0.1:{port}"
        if wait_ready(self.proc, url, self.timeout):
            return url
        self.stop()
        return None

    def stop(self) -> None:
        if self.proc is not None:
            stop_server(self.proc)
        self.proc = None

    def __exit__(self, *exc) -> None:
        self.stop()
        if self.uri.startswith("sqlite:"):
            if self._quiet is None:
                os.environ.pop(QUIET, None)
            else:
                os.environ[QUIET] = self._quiet
