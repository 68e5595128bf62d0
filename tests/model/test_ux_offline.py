"""Offline-aware pretrained weights: a tag that is not cached fails at once (one quick check, one error, no
retries); a cached tag loads without asking the network; `--dry-run` says which is which. Nothing is
downloaded: the hub endpoint is a closed port on 127.0.0.1 and the HF cache a temporary folder."""
import socket
import time

import pytest
import torch

from bench.model import offline
from bench.cli.main import main
from bench.errors import BenchError
from bench.model.factory import load_model


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the socket is: connections are refused at once


@pytest.fixture
def no_network(tmp_path, monkeypatch):
    """An empty HF cache and a hub endpoint that refuses connections."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("BENCH_OFFLINE", raising=False)
    monkeypatch.setattr(offline, "_REACHABLE", {})
    return cache


@pytest.fixture
def fake_tag(no_network, monkeypatch):
    """A published-looking tag for bench-tiny whose weights sit in the (fake) HF cache, as a download leaves them."""
    import open_clip
    from open_clip import pretrained

    from bench.model.factory import register_model_configs

    register_model_configs()
    monkeypatch.setitem(pretrained._PRETRAINED, "bench-tiny", {"fake": {"hf_hub": "bench/tiny-fake/"}})
    torch.manual_seed(1)
    state = open_clip.create_model("bench-tiny").state_dict()
    repo = no_network / "models--bench--tiny-fake"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    torch.save(state, repo / "snapshots" / commit / "open_clip_pytorch_model.bin")
    return state


def test_uncached_tag_fails_at_once_with_the_hint(no_network, capsys):
    start = time.monotonic()
    with pytest.raises(BenchError) as err:
        load_model("ViT-B-16", "openai")
    assert time.monotonic() - start < 10
    text = str(err.value)
    assert "not in the local cache" in text and "unreachable" in text and "--pretrained /path/to/checkpoint.pt" in text
    assert "Retry" not in capsys.readouterr().err


def test_hf_hub_offline_needs_no_network_check(no_network, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(offline, "reachable", lambda *a, **k: pytest.fail("HF_HUB_OFFLINE=1 must not probe the network"))
    with pytest.raises(BenchError, match="HF_HUB_OFFLINE is set"):
        load_model("ViT-B-16", "openai")


def test_cached_tag_loads_without_the_network(fake_tag, monkeypatch):
    monkeypatch.setattr(offline, "reachable", lambda *a, **k: pytest.fail("a cached tag must not probe the network"))
    start = time.monotonic()
    loaded = load_model("bench-tiny", "fake")
    assert time.monotonic() - start < 10
    got = loaded.model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in fake_tag.items())
    assert loaded.built["pretrained_tag"] == "fake"


def test_dry_run_reports_where_weights_are_and_run_refuses_at_once(fake_tag, bench_home, folder_root, capsys):
    base = ["run", "--folder", str(folder_root), "--methods", "zeroshot", "--workers", "0", "--device", "cpu"]
    assert main(base + ["--model", "bench-tiny", "--pretrained", "fake", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "weights bench-tiny fake (1 job(s)): cached locally" in out
    assert main(base + ["--model", "ViT-B-16", "--pretrained", "openai", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "weights ViT-B-16 openai (1 job(s)): not cached and cannot be fetched offline" in out
    start = time.monotonic()
    assert main(base + ["--model", "ViT-B-16", "--pretrained", "openai"]) == 2
    assert time.monotonic() - start < 15
    err = capsys.readouterr().err
    assert err.count("bench: error:") == 1 and "not in the local cache" in err and "Retry" not in err
    assert not list((bench_home / "jobs").glob("*/done.json")) if (bench_home / "jobs").exists() else True
