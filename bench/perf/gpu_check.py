"""The prepared GPU check: every figure of the GPU runner in one go, on a single-GPU machine with no internet,
in well under 8 minutes. Nothing here runs in tests or CI.

    # here, once (wheels the GPU machine's Python lacks; the device tool carries them):
    python -m bench.perf.gpu_check --prepare            # writes .gpu-wheels/
    # on the GPU machine, from the repository root:
    pip install -q --no-index --find-links .gpu-wheels open_clip_torch ftfy && \
      pip install -q --no-deps --no-build-isolation -e . && python -m bench.perf.gpu_check --out "$OUT"

It runs, each step timed and recorded even if another fails:
1. `bench perf` at real scale: ViT-B/16 with random weights (`--pretrained none`), FLYP and FT at batch 256 in
   bf16, engine vs bare vs reference-style loop, peak memory, FLOPs per sample and MFU, evaluation and
   JPEG-loader throughput, the LP probe on the GPU against scikit-learn;
2. FLYP at a global batch of 512 with gradient caching in chunks of 128 against batch 128 without (issue 11):
   throughput and peak memory of each;
3. a short FLYP job on fake ImageNet-layout data (the distribution-shift suite's imagenet task: a 1,000-class
   x 80-template zero-shot head every epoch, the chunked prompt encoder's real load), without MLflow.
Results: $OUT/perf-vitb16.json, $OUT/perf-grad-cache.json, $OUT/flyp-short.json and $OUT/summary.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

WHEELS = ["open_clip_torch", "ftfy", "wcwidth"]


def prepare(dest: Path) -> int:
    dest.mkdir(parents=True, exist_ok=True)
    return subprocess.call([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dest), *WHEELS])


def _bench(argv: list[str]) -> int:
    """One `bench` command in its own process: a crash there loses only that section."""
    return subprocess.call([sys.executable, "-m", "bench", *argv])


def perf_step(out: Path) -> dict:
    code = _bench(["perf", "--model", "ViT-B-16", "--pretrained", "none", "--method", "flyp,ft", "--batch-size", "256",
                 "--precision", "bf16", "--steps", "10", "--warmup-steps", "5", "--repeats", "3",
                 "--loader-images", "512", "--out", str(out / "perf-vitb16.json")])
    return {"exit_code": code}


def cache_step(out: Path) -> dict:
    """Issue 11: FLYP's global batch of 512 by gradient caching in chunks of 128, against batch 128 plain."""
    code = _bench(["perf", "--model", "ViT-B-16", "--pretrained", "none", "--method", "flyp", "--batch-size", "512",
                 "--micro-batch", "128", "--precision", "bf16", "--steps", "4", "--warmup-steps", "2", "--repeats", "2",
                 "--skip", "reference,eval,loader,lp,flops", "--out", str(out / "perf-grad-cache.json")])
    return {"exit_code": code}


def flyp_step(out: Path, root: Path) -> dict:
    import os

    os.environ["BENCH_DATA"] = str(root / "data")
    os.environ["BENCH_HOME"] = str(root / "home")
    from bench.datasets.fake_real import make_fake
    from bench.jobs.lifecycle import train_one
    from bench.jobs.plan import build_plan

    for name in ("imagenet", "imagenetv2", "imagenet-r", "imagenet-a", "imagenet-sketch", "objectnet"):
        make_fake(name, root / "data")
    plan = build_plan(suite="distribution-shift", tasks="imagenet", methods="flyp", model="ViT-B-16", pretrained="none",
                      sets=["epochs=2", "batch_size=8", "warmup=1"], runtime={"device": "cuda", "workers": 4,
                                                                               "eval_batch_size": 256, "precision": "bf16"})
    t0 = time.time()
    summary = train_one(plan.jobs[0])
    result = {"seconds": time.time() - t0, "summary": summary}
    (out / "flyp-short.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.perf.gpu_check")
    p.add_argument("--prepare", action="store_true", help="download the wheels the GPU machine lacks into .gpu-wheels")
    p.add_argument("--out", default="gpu-check", help="folder for the JSON results")
    args = p.parse_args(argv)
    if args.prepare:
        return prepare(Path(".gpu-wheels"))
    import tempfile

    import torch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None, "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        steps = (("perf", lambda: perf_step(out)), ("grad_cache", lambda: cache_step(out)),
                 ("flyp_short", lambda: flyp_step(out, Path(tmp))))
        for name, step in steps:
            t0 = time.time()
            try:
                summary[name] = {"ok": True, **step()}
            except Exception as exc:  # keep going: every figure that can be had in one lease
                summary[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
            summary[name]["seconds"] = time.time() - t0
            print(f"[gpu_check] {name}: {'ok' if summary[name]['ok'] else summary[name]['error']} "
                  f"({summary[name]['seconds']:.0f}s)", flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return 0 if all(v.get("ok") for v in summary.values() if isinstance(v, dict)) else 1


if __name__ == "__main__":
    sys.exit(main())
