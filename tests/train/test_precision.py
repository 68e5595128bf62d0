"""Precision options: resolution per device, autocast closeness to fp32, the fp16 scaler's skipped steps."""
import pytest
import torch

from bench.errors import BenchError
from bench.model.factory import load_model
from bench.train.precision import (PRECISIONS, compile_towers, enable_tf32, make_adamw, optimizer_step,
                             resolve_precision, supported)


def needs(name):
    ok, why = supported(name, "cpu")
    return pytest.mark.skipif(not ok, reason=f"{name} on this CPU: {why}")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    m = load_model("bench-tiny", None)
    m.model.eval()
    return m.model, torch.randn(4, 3, 32, 32), m.tokenizer(["a cat", "a dog", "a bird", "a fish"])


def test_invalid_names_list_the_valid_ones():
    with pytest.raises(BenchError, match=r"Unknown precision 'fp8'.*auto, bf16, fp16, fp32"):
        resolve_precision("fp8", "cpu")


def test_auto_is_fp32_on_cpu_and_names_are_case_insensitive():
    assert resolve_precision("auto", "cpu").name == "fp32"
    assert resolve_precision(None, torch.device("cpu")).name == "fp32"
    assert resolve_precision("FP32", "cpu").autocast().__class__.__name__ == "nullcontext"


def test_cuda_precision_without_a_gpu_says_why():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the unsupported path cannot be reached")
    with pytest.raises(BenchError, match="CUDA is not available.*auto or fp32"):
        resolve_precision("bf16", "cuda")


@needs("bf16")
def test_bf16_autocast_on_cpu_is_close_to_fp32_and_keeps_params_fp32(tiny):
    model, images, tokens = tiny
    prec = resolve_precision("bf16", "cpu")
    assert prec.make_scaler() is None
    with torch.no_grad():
        ref = model.encode_image(images, normalize=True)
        with prec.autocast():
            low = model.encode_image(images, normalize=True)
            with prec.fp32():
                full = torch.nn.functional.linear(low.float(), torch.eye(low.shape[1]))
    assert low.dtype == torch.bfloat16 and full.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    cos = torch.nn.functional.cosine_similarity(low.float(), ref, dim=-1)
    assert cos.min() > 0.99


@needs("bf16")
def test_inference_context_runs_autocast_without_autograd(tiny):
    model, images, _ = tiny
    with resolve_precision("bf16", "cpu").inference():
        out = model.encode_image(images)
        assert torch.is_inference_mode_enabled() and out.dtype == torch.bfloat16


@needs("fp16")
def test_fp16_scaler_skips_overflowing_steps_without_failing():
    lin = torch.nn.Linear(4, 1)
    prec = resolve_precision("fp16", "cpu")
    scaler = prec.make_scaler()
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    before = lin.weight.detach().clone()
    with prec.autocast():
        loss = lin(torch.full((2, 4), 1e30)).float().sum()  # gradients overflow: the scaler must skip
    result = optimizer_step(loss, opt, scaler, grad_clip=1.0)
    assert bool(result.skipped) and torch.equal(lin.weight, before)
    opt.zero_grad(set_to_none=True)
    with prec.autocast():
        loss = lin(torch.full((2, 4), 0.01)).float().mean()
    result = optimizer_step(loss, opt, scaler, grad_clip=1.0)
    assert not bool(result.skipped) and not torch.equal(lin.weight, before)


def test_step_clips_and_reports_the_norm_without_a_scaler():
    lin = torch.nn.Linear(4, 1)
    opt = make_adamw(lin.parameters(), lr=1e-3, weight_decay=0.1)
    assert not opt.defaults.get("fused")  # fused kernels are for CUDA
    result = optimizer_step((lin(torch.ones(3, 4)) * 100).sum(), opt, grad_clip=0.5)
    assert result.skipped is False and float(result.grad_norm) > 0.5
    assert all(float(p.grad.norm()) <= 0.5 + 1e-5 for p in lin.parameters())


def test_tf32_is_cuda_only():
    before = torch.get_float32_matmul_precision()
    assert enable_tf32("cpu") is False and torch.get_float32_matmul_precision() == before


def test_compiled_towers_keep_state_dict_keys():
    m = load_model("bench-tiny", None).model
    keys = list(m.state_dict())
    compile_towers(m)  # lazy: nothing compiles until the first call
    assert list(m.state_dict()) == keys


def test_every_listed_precision_resolves_or_explains_on_cpu():
    for name in PRECISIONS:
        ok, why = supported(name, "cpu") if name != "auto" else (True, "")
        if ok:
            assert resolve_precision(name, "cpu").name in ("fp32", "bf16", "fp16")
        else:
            with pytest.raises(BenchError, match="cannot run here"):
                resolve_precision(name, "cpu")
