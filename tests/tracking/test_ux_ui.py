"""`bench ui`: a busy port is an error with the fix; SIGTERM stops the server it started (its whole group)."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli.main import main

pytestmark = pytest.mark.slow  # an MLflow server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_busy_port_is_an_error_with_the_fix(bench_home, capsys):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert main(["ui", "--port", str(port)]) != 0
    err = capsys.readouterr().err
    assert f"Port {port}" in err and "already in use" in err and f"--port {port + 1}" in err


def test_sigterm_stops_the_server(bench_home):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "bench", "ui", "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        deadline, lines = time.monotonic() + 150, []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "ready:" in line or not line:
                break
        assert "ready:" in lines[-1], lines
        assert f"http://127.0.0.1:{port}/#/experiments" in lines[-1] and "workflowType=machine_learning" in lines[-1]
        server = processes_mentioning(str(bench_home / "mlflow.db"))  # the server runs on this test's store
        assert server
        group = os.getpgid(server[0])  # its workers and job consumers share it
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        time.sleep(1)
        assert processes_mentioning(str(bench_home / "mlflow.db")) == []
        assert [p for p in processes_mentioning("") if _pgid(p) == group] == []
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
