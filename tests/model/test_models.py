import pytest

from bench.errors import BenchError
from bench.model.factory import check_pretrained, load_model


def test_tiny_config_loads_offline_with_random_init():
    m = load_model("bench-tiny", None)
    assert m.model.visual.image_size == (32, 32)
    assert m.tokenizer(["a photo of a cat."]).shape == (1, 16)


def test_unknown_tag_lists_valid_tags():
    with pytest.raises(BenchError, match=r"Unknown pretrained tag for model 'ViT-B-32'.*'openai'"):
        check_pretrained("ViT-B-32", "opneai")


def test_weights_that_cannot_be_fetched_offline_say_how_to_pass_a_file():
    with pytest.raises(BenchError, match="pass it with --pretrained /path/to/checkpoint.pt"):
        load_model("ViT-B-32", "openai")


def test_a_saved_checkpoint_loads_back_as_pretrained(tmp_path):
    import torch

    from bench.fsutil import torch_save_atomic

    m = load_model("bench-tiny", None)
    path = tmp_path / "weights.pt"
    torch_save_atomic({"state_dict": m.model.state_dict(), "bench_head": None}, path)
    again = load_model("bench-tiny", str(path))
    assert all(torch.equal(a, b) for a, b in zip(m.model.state_dict().values(), again.model.state_dict().values()))
