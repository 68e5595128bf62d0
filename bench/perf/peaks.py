"""Peak throughput for MFU: the device's dense spec peak for the run's precision (bf16/fp16 tensor cores, or
TF32 for fp32 runs, which enable TF32), and a measured one (a large square matmul), so that MFU is stated
against both: the spec says what the silicon could do, the matmul what this machine's clocks and power allow."""
from __future__ import annotations

import time

import torch

# Dense TFLOP/s by spec (NVIDIA datasheets; the sparsity figures halved), matched on the device name in order:
# the H100 variants share "H100", so the specific ones come first. ("name part", bf16/fp16, tf32)
SPEC_PEAKS = [
    ("H100 NVL", 835.0, 417.5),
    ("H100 PCIe", 756.0, 378.0),
    ("H100", 989.0, 494.5),   # SXM5 ("NVIDIA H100 80GB HBM3")
    ("H200", 989.0, 494.5),
    ("GH200", 989.0, 494.5),
    ("A100", 312.0, 156.0),
    ("L40S", 362.0, 183.0),
    ("A10", 125.0, 62.5),
]


def spec_peak(device_name: str, precision: str) -> tuple[str, float] | tuple[None, None]:
    """(matched entry, dense TFLOP/s) for `precision` (bf16/fp16 -> tensor-core half, fp32 -> TF32), or (None,
    None) for a device not in the table."""
    for part, half, tf32 in SPEC_PEAKS:
        if part.lower() in device_name.lower():
            return part, (tf32 if precision == "fp32" else half)
    return None, None


def measured_matmul_tflops(device, precision: str, n: int = 8192, repeats: int = 10) -> float | None:
    """TFLOP/s of an n-cube matmul in the run's dtype on a CUDA device (fp32 under the TF32 setting the engine
    uses); None elsewhere. About 790 for bf16 on these machines' H100 and H200."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize(device)
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0) / 1e12
