"""Checks of the runtime options a job trains with (workers, evaluation batch, precision, device): runtime
options are outside the run key, so they are checked on their own, before any job starts."""
from __future__ import annotations

from bench.errors import BenchError, did_you_mean


DEVICES = "auto, cpu, cuda, cuda:N or mps"


def check_runtime(runtime: dict, local: bool = True) -> dict:
    """Loader workers >= 0, eval batch size >= 1, and a device name torch knows; with `local`, one that exists
    on this machine (under Ray the jobs run elsewhere, so only the name is checked)."""
    for key, low, flag in (("workers", 0, "--workers"), ("eval_batch_size", 1, "--eval-batch-size")):
        value = runtime.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise BenchError(f"{flag} must be an integer >= {low}, got {value!r}.")
    from bench.train.precision import PRECISIONS

    if runtime.get("precision", "auto") not in PRECISIONS:
        raise BenchError(f"--precision must be one of {', '.join(PRECISIONS)}, got {runtime.get('precision')!r}.")
    device = runtime.get("device") or "auto"
    if not isinstance(device, str):
        raise BenchError(f"--device must be one of {DEVICES}, got {device!r}.")
    if device in ("auto", "cpu"):
        return runtime
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise BenchError(f"Unknown --device '{device}'.{did_you_mean(device, ['auto', 'cpu', 'cuda', 'mps'])} "
                         f"Use {DEVICES}.") from None
    if parsed.type not in ("cpu", "cuda", "mps"):
        raise BenchError(f"--device '{device}' is not supported; use {DEVICES}.")
    if not local:
        return runtime
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise BenchError(f"--device {device}: CUDA is not available on this machine (torch {torch.__version__}). "
                             "Use --device cpu or auto, or install a CUDA build of torch.")
        if parsed.index is not None and parsed.index >= count:
            raise BenchError(f"--device {device}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}.")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise BenchError(f"--device {device}: MPS is not available on this machine. Use --device cpu or auto.")
    return runtime
