"""Numeric precision and fast kernels for one device, passed into the training loop (open_clip's habit).

`resolve_precision(name, device)` turns a runtime option into a `Precision`:
- auto: bf16 autocast on CUDA GPUs that support it, fp16 autocast + GradScaler on those that do not, fp32 elsewhere;
- bf16 / fp16 / fp32: that, where the platform supports it (fp16 always gets a GradScaler).

What stays fp32: parameters (the learned temperature included) and optimizer state, because autocast only
casts op *outputs* and the model is never `.half()`-ed; gradients are fp32 since they follow the parameters.
Losses should be computed in fp32 too: bf16 has ~3 significant digits, so contrastive logits scaled by a
temperature of 100 lose whole units. Wrap the loss in `prec.fp32()` and `.float()` the features:

    with prec.autocast():
        img, txt = model.encode_image(x, normalize=True), model.encode_text(t, normalize=True)
    with prec.fp32():
        loss = clip_loss(img.float(), txt.float(), model.logit_scale.exp())
    result = optimizer_step(loss, optimizer, scaler, grad_clip=1.0)   # result.skipped: device tensor

`inference()` is evaluation's context: torch.inference_mode plus the same autocast. Tensors made inside it
cannot enter autograd later, so build heads that will be trained (zero-shot init) outside it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from bench.errors import BenchError

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def _device_type(device) -> str:
    return torch.device(device).type if not isinstance(device, torch.device) else device.type


@dataclass(frozen=True)
class Precision:
    name: str  # resolved: bf16, fp16 or fp32
    device_type: str  # cuda, cpu, ...

    @property
    def dtype(self) -> torch.dtype | None:
        return _DTYPES[self.name]

    @property
    def needs_scaler(self) -> bool:
        return self.name == "fp16"

    def autocast(self):
        """Mixed-precision region for forward passes; a no-op for fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def fp32(self):
        """A full-precision region inside `autocast()` (losses, logits, the temperature)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, enabled=False)

    @contextlib.contextmanager
    def inference(self):
        """Evaluation: no autograd bookkeeping at all, and the training autocast."""
        with torch.inference_mode(), self.autocast():
            yield

    def make_scaler(self) -> torch.amp.GradScaler | None:
        """A GradScaler for fp16 (its underflow guard), None otherwise. Save/restore it with checkpoints."""
        return torch.amp.GradScaler(self.device_type) if self.needs_scaler else None


def supported(name: str, device) -> tuple[bool, str]:
    """Whether this platform runs `name` on `device`, and if not, why (for messages and test skips)."""
    dev = _device_type(device)
    dtype = _DTYPES.get(name)
    if name not in _DTYPES:
        return False, f"unknown precision '{name}'"
    if dtype is None:
        return True, ""
    if dev == "cuda":
        if not torch.cuda.is_available():
            return False, "CUDA is not available"
        # Native bf16 only: V100/T4 emulate it (slowly) and get fp16 with a loss scaler instead.
        if dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported(including_emulation=False):
            return False, f"this GPU ({torch.cuda.get_device_name()}) has no native bf16 support"
        return True, ""
    if not torch.amp.autocast_mode.is_autocast_available(dev):
        return False, f"autocast is not available on '{dev}'"
    try:  # some CPU builds lack fp16 autocast kernels; ask the platform instead of guessing
        with torch.autocast(dev, dtype=dtype):
            out = torch.nn.functional.linear(torch.ones(2, 2, device=dev), torch.ones(2, 2, device=dev))
        if out.dtype != dtype:
            return False, f"autocast on '{dev}' does not produce {name}"
        if name == "fp16":
            torch.amp.GradScaler(dev)
    except (RuntimeError, TypeError, ValueError) as exc:
        return False, f"{name} autocast is not supported on '{dev}' by torch {torch.__version__}: {exc}"
    return True, ""


def resolve_precision(name: str | None, device) -> Precision:
    """The precision to run for a runtime option; a BenchError lists valid names or says what is unsupported."""
    name = "auto" if name in (None, "") else str(name).lower()
    if name not in PRECISIONS:
        raise BenchError(f"Unknown precision '{name}'. Valid precisions: {', '.join(PRECISIONS)} "
                         "(e.g. --set precision=bf16 or runtime precision: auto).")
    dev = _device_type(device)
    if name == "auto":
        if dev != "cuda":
            name = "fp32"  # CPU autocast is slower than fp32 for these models
        else:
            name = "bf16" if supported("bf16", dev)[0] else "fp16"
    ok, why = supported(name, dev)
    if not ok:
        raise BenchError(f"Precision '{name}' cannot run here: {why}. Use precision auto or fp32.")
    return Precision(name, dev)


def enable_tf32(device) -> bool:
    """TF32 for fp32 matmuls and convolutions on CUDA (Ampere and newer): ~8x the fp32 matmul rate, with
    a 10-bit mantissa that training tolerates. Returns whether it was enabled; CPU is left untouched."""
    if _device_type(device) != "cuda":
        return False
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True
    return True


def make_adamw(params, lr: float, weight_decay: float = 0.0, betas=(0.9, 0.999), eps: float = 1e-8,
               device="cpu") -> torch.optim.AdamW:
    """AdamW with the fused CUDA kernel on GPU (one launch for all parameters instead of several per
    tensor); the default implementation elsewhere. `params` may be parameters or parameter groups."""
    fused = _device_type(device) == "cuda"
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas, eps=eps, fused=fused or None)


@dataclass
class StepResult:
    skipped: torch.Tensor | bool  # device bool tensor with a scaler (read it at log intervals), else False
    grad_norm: torch.Tensor | None  # total norm before clipping (device tensor), when clipping


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None = None,
                   grad_clip: float = 0.0, parameters=None) -> StepResult:
    """backward, unscale (fp16), clip, step, scaler update: no host sync.

    With a scaler, a step whose gradients overflowed is skipped by the scaler and its scale backs off: that is
    fp16 working as designed, not a failure; `skipped` says so as a device tensor. Gradients are not zeroed
    here: call `optimizer.zero_grad(set_to_none=True)` before the forward pass.
    """
    backward(loss, scaler)
    return apply_step(optimizer, scaler, grad_clip, parameters)


def backward(loss: torch.Tensor, scaler: torch.amp.GradScaler | None = None) -> None:
    """loss.backward(), through the fp16 scaler when there is one (gradients then carry its scale)."""
    if scaler is None:
        loss.backward()
    else:
        scaler.scale(loss).backward()


def apply_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None = None, grad_clip: float = 0.0,
               parameters=None) -> StepResult:
    """The optimizer step on gradients already computed (and, in a multi-process job, averaged over ranks)."""
    grad_norm = None
    if grad_clip and grad_clip > 0:
        if scaler is not None:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        if parameters is None:
            parameters = [p for g in optimizer.param_groups for p in g["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
    if scaler is None:
        optimizer.step()
        return StepResult(False, grad_norm)
    before = scaler._scale.clone()  # the scale only drops (backoff) when the step was skipped
    scaler.step(optimizer)
    scaler.update()
    return StepResult(scaler._scale < before, grad_norm)


def compile_towers(model) -> None:
    """Opt-in torch.compile of both CLIP towers, in place: parameter names and state_dict keys do not change,
    so checkpoints and WiSE-FT interpolation keep working. BENCH_COMPILE_BACKEND (default inductor) picks
    another torch.compile backend, e.g. `eager` to check graph captures and recompiles in seconds."""
    import os

    backend = os.environ.get("BENCH_COMPILE_BACKEND", "inductor")
    for name in ("visual", "transformer", "text"):
        tower = getattr(model, name, None)
        if isinstance(tower, torch.nn.Module):
            tower.compile(backend=backend)
