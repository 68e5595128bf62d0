"""`bench perf`'s options, apart from bench/perf/command.py so that `bench --help` does not import torch."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("perf", help="benchmark training, evaluation, loading and LP probes (prints a table, writes JSON)")
    p.add_argument("--model", default="toy-clip", help="open_clip architecture (default toy-clip; ViT-B-16 for real scale)")
    p.add_argument("--pretrained", help="weights (default: the bundled toy-clip checkpoint, else none = random init)")
    p.add_argument("--method", default="flyp,ft", help="comma-separated: flyp, ft (default both)")
    p.add_argument("--batch-size", type=int, help="training batch (default 64 on CPU, 256 on GPU)")
    p.add_argument("--micro-batch", type=int, default=0, metavar="N",
                   help="also time the engine at --batch-size in chunks of N (gradient caching for FLYP, accumulation "
                        "for FT) against the engine at batch N, with each one's peak memory on GPUs")
    p.add_argument("--steps", type=int, default=8, help="timed steps per repetition (default 8)")
    p.add_argument("--warmup-steps", type=int, default=3, help="untimed steps before timing (default 3)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved repetitions (default 5)")
    p.add_argument("--precision", default="auto", help="auto, bf16, fp16 or fp32")
    p.add_argument("--device", default="auto", help="cuda, cpu or auto")
    p.add_argument("--compile", action="store_true", help="torch.compile the towers in the engine and bare loops")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: reference, logging, eval, loader, lp, flops")
    p.add_argument("--loader-images", type=int, default=128, help="JPEG files for the loader benchmark (default 128)")
    p.add_argument("--workers", type=int, help="loader workers (default: from the cores)")
    p.add_argument("--peak-tflops", type=float, help="the device's dense peak for MFU (default: by GPU name)")
    p.add_argument("--out", default="perf.json", help="JSON output path (default perf.json)")
