"""`bench sweep --executor ray --address` against a real 2-node Ray cluster on this machine (`ray start --head`
and `ray start --address`, token authentication on, as Ray 2.60 starts it): a client without the token gets
bench's advice instead of Ray's retry lines, and with it the sweep's 2 trials run, each epoch line shown once."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bench.runtime.host import free_port

RAY = str(Path(sys.executable).parent / "ray")
SET = ["--set", "epochs=2", "--set", "batch_size=8", "--set", "warmup=1", "--set", "lr=1e-3"]


def _pids_under(temp_dir: str) -> list[int]:
    """This cluster's processes: every one names its own temp dir (session, logs, sockets) on its command line."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if temp_dir.encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


@pytest.fixture(scope="module")
def ray_cluster():
    """A head and a worker node (1 CPU each) in token mode, in a temp dir of their own: `ray.init()` elsewhere on
    this machine never finds it (its address file is not /tmp/ray's). Stopped by its own pids, never `ray stop`."""
    temp_dir = tempfile.mkdtemp(prefix="bray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    token, port = secrets.token_hex(32), free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    try:
        for args in (["--head", "--port", str(port), "--include-dashboard=false", "--temp-dir", temp_dir],
                     ["--address", f"127.0.0.1:{port}"]):
            out = subprocess.run([RAY, "start", *args, *common], env=env, capture_output=True, text=True, timeout=180)
            assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        yield {"address": f"127.0.0.1:{port}", "token": token}
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _pids_under(temp_dir):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(2)
        shutil.rmtree(temp_dir, ignore_errors=True)


def bench(args, env, timeout=600):
    return subprocess.run([sys.executable, "-m", "bench", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_sweep_on_a_two_node_token_cluster(ray_cluster, bench_home, folder_root, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("hparams:\n  lr: {loguniform: [1.0e-4, 1.0e-2]}\n")
    args = ["sweep", "--method", "ft", "--folder", str(folder_root), "--space", str(space), "--num-samples", "1",
            "--model", "bench-tiny", "--pretrained", "none", "--workers", "0", "--device", "cpu", *SET,
            "--executor", "ray", "--address", ray_cluster["address"]]
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    base.update(BENCH_HOME=str(bench_home), HOME=str(tmp_path))  # no ~/.ray/auth_token in this HOME

    refused = bench(args, base)
    assert refused.returncode == 2
    assert "uses token authentication and refused this machine's token" in refused.stderr
    assert "export RAY_AUTH_MODE=token" in refused.stderr and "~/.ray/auth_token" in refused.stderr
    assert "Failed to get cluster ID" not in refused.stdout + refused.stderr  # Ray's retry lines stay off
    assert not (bench_home / "jobs").exists()

    ran = bench(args, {**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": ray_cluster["token"]})
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "now 2 done" in ran.stdout
    for h in (0, 1):
        for epoch in (1, 2):
            line = f"[shapes-ft-s0-h{h}] epoch {epoch}/2 "
            assert ran.stdout.count(line) == 1, (line, ran.stdout[-3000:])  # one copy, though 2 nodes forward logs
