"""Weights get the architecture they were trained with; mismatches and non-checkpoints are refused with the fix.

Nothing is downloaded: ViT-B-16 is only resolved and built on the meta device (shapes and modules, no memory),
and "published" files are fakes whose tensors are stride-0 views (a ViT-B-16-shaped state dict in a few KB).
"""
from pathlib import Path

import pytest
import torch
from torch import nn
from open_clip.transformer import QuickGELU

from bench.errors import BenchError
from bench.model.factory import (ASSET_DIR, check_pretrained, checkpoint_metadata, load_model, resolve_model, skeleton)


def activations(model) -> set[type]:
    return {type(m) for m in model.modules()} & {QuickGELU, nn.GELU}


def test_vit_b16_openai_resolves_to_quickgelu_and_openai_preprocessing():
    spec = resolve_model("ViT-B-16", "openai")
    assert spec.quick_gelu and spec.source == "tag"
    model = skeleton(spec)
    assert activations(model) == {QuickGELU}
    assert model.visual.image_size == (224, 224)
    assert model.visual.preprocess_cfg["mean"] == pytest.approx((0.48145466, 0.4578275, 0.40821073))


def test_a_gelu_tag_builds_gelu_and_an_explicit_quickgelu_name_for_it_is_refused():
    assert activations(skeleton(resolve_model("ViT-B-16", "laion2b_s34b_b88k"))) == {nn.GELU}
    assert resolve_model("ViT-B-16-quickgelu", "openai").quick_gelu
    with pytest.raises(BenchError, match=r"trained with GELU.*pass --model ViT-B-16 "):
        check_pretrained("ViT-B-16-quickgelu", "laion2b_s34b_b88k")


def test_random_init_keeps_the_config_activation():
    assert activations(skeleton(resolve_model("ViT-B-16", None))) == {nn.GELU}
    assert activations(skeleton(resolve_model("ViT-B-16-quickgelu", "none"))) == {QuickGELU}


def test_built_record_reads_the_real_modules(tmp_path):
    m = load_model("bench-tiny", None)
    assert m.built["activation"] == "gelu" and m.built["image_size"] == [32, 32]
    assert m.built["weights_source"] == "none" and m.built["weights"] is None
    toy = load_model("toy-clip", "default")
    assert toy.built["weights"].startswith("file:") and toy.built["arch"] == "toy-clip"


def test_saved_build_record_rebuilds_the_same_activation_and_refuses_contradictions(tmp_path):
    m = load_model("bench-tiny", None)
    meta = checkpoint_metadata(m)
    meta["built"]["activation"] = "quick_gelu"  # as if saved from a QuickGELU build
    path = tmp_path / "selected.pt"
    torch.save({"state_dict": m.model.state_dict(), **meta}, path)
    again = load_model("bench-tiny", str(path))
    assert again.built["activation"] == "quick_gelu"
    assert activations(again.model) == {QuickGELU}
    with pytest.raises(BenchError, match=r"saved from model 'bench-tiny', not 'toy-clip': pass --model bench-tiny"):
        check_pretrained("toy-clip", str(path))


@pytest.mark.parametrize("content, why", [
    (b"just some text, not weights\n" * 20, "neither a torch"),
    (b"\x00\x01garbage" * 50, "neither a torch"),
    (b"abc", "only 3 bytes"),
])
def test_non_checkpoints_are_refused_before_any_work(tmp_path, content, why):
    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    with pytest.raises(BenchError, match=why):
        check_pretrained("bench-tiny", str(path))


def test_truncated_checkpoint_is_refused(tmp_path):
    data = (ASSET_DIR / "toy-clip.pt").read_bytes()
    path = tmp_path / "toy-clip.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BenchError, match="damaged or truncated"):
        check_pretrained("toy-clip", str(path))


def test_checkpoint_of_another_architecture_names_the_right_model():
    with pytest.raises(BenchError, match=r"does not fit model 'bench-tiny'.*pass --model toy-clip"):
        check_pretrained("bench-tiny", str(ASSET_DIR / "toy-clip.pt"))


def fake_published(path: Path, arch: str) -> Path:
    """A state dict with the exact key/shape layout of `arch`, every tensor a stride-0 view of one float."""
    one = torch.zeros(1)
    sd = {k: one.expand(*v.shape) if v.dim() else one[0].clone() for k, v in skeleton(resolve_model(arch, None)).state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)
    return path


def test_published_openai_file_in_the_hf_cache_is_known_to_need_quickgelu(tmp_path):
    # The HF hub cache path names the repo open_clip's pretrained config ties to ViT-B-16 'openai'.
    path = fake_published(tmp_path / "models--timm--vit_base_patch16_clip_224.openai" / "snapshots" / "abc"
                          / "open_clip_pytorch_model.bin", "ViT-B-16")
    assert path.stat().st_size < 1 << 20
    spec = resolve_model("ViT-B-16", str(path))
    assert spec.quick_gelu and spec.tag == "openai"
    assert activations(skeleton(spec)) == {QuickGELU}
    with pytest.raises(BenchError, match=r"published 'ViT-B-16' weights 'openai', not 'ViT-B-32': pass --model ViT-B-16"):
        check_pretrained("ViT-B-32", str(path))


def test_unknown_file_follows_the_name_and_shapes_must_fit(tmp_path):
    path = fake_published(tmp_path / "mine.pt", "ViT-B-16")
    assert not resolve_model("ViT-B-16", str(path)).quick_gelu  # nothing says otherwise: the name decides
    assert resolve_model("ViT-B-16-quickgelu", str(path)).quick_gelu
    with pytest.raises(BenchError, match=r"does not fit model 'ViT-B-32'.*pass --model ViT-B-16"):
        check_pretrained("ViT-B-32", str(path))
