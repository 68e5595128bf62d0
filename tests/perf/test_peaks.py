"""Right peaks and precision picks (issue 21, item 7): MFU against the exact device's dense spec peak (TF32 for
fp32 runs), and bf16 only where the GPU has it natively."""
from __future__ import annotations

import pytest

from bench.perf.peaks import measured_matmul_tflops, spec_peak


@pytest.mark.parametrize("name,precision,peak", [
    ("NVIDIA H100 80GB HBM3", "bf16", 989.0),   # SXM5
    ("NVIDIA H100 PCIe", "bf16", 756.0),
    ("NVIDIA H100 NVL", "bf16", 835.0),
    ("NVIDIA H200", "bf16", 989.0),
    ("NVIDIA H100 80GB HBM3", "fp32", 494.5),   # TF32
    ("NVIDIA H100 PCIe", "fp16", 756.0),
    ("NVIDIA A100-SXM4-80GB", "fp32", 156.0),
])
def test_spec_peak_is_the_exact_device_and_precision(name, precision, peak):
    assert spec_peak(name, precision)[1] == peak


def test_unknown_devices_have_no_spec_peak_and_cpus_no_measured_one():
    assert spec_peak("Tesla V100-SXM2-16GB", "bf16") == (None, None)
    assert measured_matmul_tflops("cpu", "bf16") is None


def test_bf16_is_asked_for_natively(monkeypatch):
    """A GPU that only emulates bf16 (V100, T4) gets fp16 from `auto`: the check passes including_emulation=False."""
    import torch

    from bench.train.precision import resolve_precision

    asked = {}

    def is_bf16_supported(including_emulation=True):
        asked["including_emulation"] = including_emulation
        return including_emulation  # an emulating GPU: True only when emulation counts

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla V100-SXM2-16GB")
    assert resolve_precision("auto", "cuda").name == "fp16"
    assert asked == {"including_emulation": False}
