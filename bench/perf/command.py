"""`bench perf`: how fast the engine trains, evaluates, loads JPEGs and fits linear probes, measured, not asserted.

Training is timed for three loops on the same model, loss, batch and (for a and b) precision and optimizer:
    engine     the engine's own inner loop (bench.train.engine.run_steps: schedule, autocast, sync-free step)
    bare       the least a PyTorch user would write: forward, loss, backward, step
    reference  the official FLYP code's habits: fp32, a DataParallel wrapper, a Python schedule call and a
               `loss.item()` every step, default AdamW
Batches are made once on the device, so the loops are timed without the loader (which has its own line).
Repetitions are interleaved (engine, bare, reference, engine, ...) so that a noisy shared machine slows
every contender alike; medians with min-max are reported. FLOPs per sample are counted by PyTorch's
FlopCounterMode on one forward+backward (a multiply-add counts 2); MFU is given on CUDA against the
device's dense spec peak for the precision (bench.perf.peaks: TF32 for fp32 runs; `--peak-tflops` overrides)
and against a measured 8192-cube matmul. `engine+log` is the engine logging every step to a real MLflow store
(the background writer), against `engine` without logging.
"""
from __future__ import annotations

import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.errors import BenchError

VIT_B16_GFLOP = 123.0  # per image-text pair and training step (the issue's figure), for comparison


# --- the three training loops ------------------------------------------------------------------------------
class _Setup:
    """A model, a method set up on it and synthetic batches, for one training loop."""

    def __init__(self, loaded, method_name: str, batch: int, n_batches: int, device, prec, compile_: bool):
        from bench.config import method_defaults
        from bench.model.heads import tokenize_prompts
        from bench.methods import METHODS
        from bench.methods.base import MethodContext
        from bench.train.precision import compile_towers, make_adamw

        self.model = copy.deepcopy(loaded.model).to(device)
        classes = [f"object {i}" for i in range(100)]
        templates = ["a photo of a {}.", "a sketch of a {}."]
        cls = METHODS.get(method_name)
        self.hp = {**method_defaults(cls), "lr": 1e-5, "warmup": 0, "grad_clip": 0.0 if method_name == "flyp" else 1.0}
        ctx = MethodContext(model=self.model, tokenizer=loaded.tokenizer, classnames=classes, templates=templates,
                            prompt_tokens=tokenize_prompts(loaded.tokenizer, classes, templates), hparams=self.hp,
                            device=device)
        self.method = cls()
        self.method.setup(ctx)
        if compile_:
            compile_towers(self.model)
        self.params = [p for p in self.method.trainable_parameters() if p.requires_grad]
        self.optimizer = make_adamw(self.params, lr=1e-5, weight_decay=0.1, device=device) if self.params else None
        self.scaler = prec.make_scaler()
        size = loaded.model.visual.image_size
        size = size if isinstance(size, int) else size[0]
        g = torch.Generator().manual_seed(0)
        self.batches = [(torch.randn(batch, 3, size, size, generator=g).to(device),
                         torch.randint(0, len(classes), (batch,), generator=g).to(device)) for _ in range(n_batches)]
        self.tokens = [self.method.sample_prompts(y) if hasattr(self.method, "sample_prompts") else None
                       for _, y in self.batches]


def _engine_loop(s: _Setup, prec, device, steps: int, micro_batch: int = 0, on_log=None) -> None:
    from bench.train.engine import run_steps

    s.step = getattr(s, "step", 0)
    run_steps(s.method, (s.batches[i % len(s.batches)] for i in range(steps)), s.optimizer, s.params, s.hp, prec,
              s.scaler, device, first_step=s.step, total_steps=10 ** 6, micro_batch=micro_batch, on_log=on_log,
              log_every=1)
    s.step += steps  # logged steps never repeat: each (metric, step) is a new point


class _PerfRun:
    """A real MLflow run in a temporary SQLite store that the logged engine loop writes to."""

    def __init__(self, root: Path):
        from bench.tracking.runs import MlflowTracker
        from bench.tracking.store import client

        uri = f"sqlite:///{root / 'mlflow.db'}"
        client(uri).create_experiment("perf", artifact_location=(root / "artifacts").as_uri())
        self.tracker = MlflowTracker("perf", uri=uri)
        from types import SimpleNamespace

        self.tracker.start(SimpleNamespace(display_name="perf"), {}, {"mlflow.runName": "perf", "bench.kind": "perf"})

    def close(self) -> None:
        self.tracker.finish()


def _bare_loop(s: _Setup, prec, device, steps: int, method_name: str) -> None:
    from bench.model.losses import clip_loss
    from bench.train.precision import optimizer_step

    model = s.model
    for i in range(steps):
        x, y = s.batches[i % len(s.batches)]
        s.optimizer.zero_grad(set_to_none=True)
        with prec.autocast():
            if method_name == "flyp":
                img = model.encode_image(x, normalize=True)
                txt = model.encode_text(s.tokens[i % len(s.tokens)], normalize=True)
                loss = clip_loss(img, txt, model.logit_scale.exp())
            else:
                loss = F.cross_entropy(s.method.head(model.encode_image(x)), y)
        optimizer_step(loss, s.optimizer, s.scaler, s.hp["grad_clip"], s.params)


def _reference_loop(s: _Setup, device, steps: int, method_name: str) -> None:
    """The official code's loop: fp32, DataParallel, a schedule call and loss.item() per step."""
    from bench.model.losses import clip_loss
    from bench.train.schedule import cosine_lr

    model = torch.nn.DataParallel(s.model) if device.type == "cuda" else s.model
    optimizer = s.ref_optimizer
    for i in range(steps):
        x, y = s.batches[i % len(s.batches)]
        for group in optimizer.param_groups:  # FLYP's cosine_lr(...) closure, called every step
            group["lr"] = cosine_lr(i, 1e-5, 500, 10 ** 6)
        optimizer.zero_grad()
        if method_name == "flyp":
            img, txt, scale = model(x, s.tokens[i % len(s.tokens)])[:3] if _returns_tuple(s.model) else \
                _dict_out(model(x, s.tokens[i % len(s.tokens)]))
            loss = clip_loss(img, txt, scale)
        else:
            feats = model.module.encode_image(x) if hasattr(model, "module") else model.encode_image(x)
            loss = F.cross_entropy(s.method.head(feats), y)
        loss.backward()
        if s.hp["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(s.params, s.hp["grad_clip"])
        optimizer.step()
        loss.item()  # the reference logs every step: a host sync


def _returns_tuple(model) -> bool:
    return not getattr(model, "output_dict", False)


def _dict_out(out: dict):
    return out["image_features"], out["text_features"], out["logit_scale"]


# --- measurement helpers ------------------------------------------------------------------------------------
def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def _flops_per_sample(s: _Setup, prec, device, method_name: str, batch: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        _bare_loop(s, prec, device, 1, method_name)
    return counter.get_total_flops() / batch


def _train_benchmark(loaded, method_name, args, device, prec, batch, skip) -> dict:
    from bench.train.precision import Precision

    fp32 = Precision("fp32", device.type)
    loops = {"engine": lambda s, n: _engine_loop(s, prec, device, n),
             "bare": lambda s, n: _bare_loop(s, prec, device, n, method_name)}
    run = None
    if "logging" not in skip:
        tmp = tempfile.TemporaryDirectory()
        run = _PerfRun(Path(tmp.name))
        loops["engine+log"] = lambda s, n: _engine_loop(s, prec, device, n, on_log=run.tracker.log_metrics)
    if "reference" not in skip:
        loops["reference"] = lambda s, n: _reference_loop(s, device, n, method_name)
    setups = {}
    for name in loops:
        if name == "engine+log":  # the engine's own model and optimizer: only the logging differs
            setups[name] = setups["engine"]
            continue
        s = _Setup(loaded, method_name, batch, 2, device, fp32 if name == "reference" else prec,
                   args.compile and name != "reference")
        if name == "reference":
            s.ref_optimizer = torch.optim.AdamW(s.params, lr=1e-5, weight_decay=0.1)
        setups[name] = s
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for name, loop in loops.items():  # compile, autotune, allocator warm-up: untimed
        loop(setups[name], args.warmup_steps)
    rates = {name: [] for name in loops}
    for _ in range(args.repeats):
        for name, loop in loops.items():
            _sync(device)
            t0 = time.perf_counter()
            loop(setups[name], args.steps)
            _sync(device)
            rates[name].append(args.steps * batch / (time.perf_counter() - t0))
    if run is not None:
        run.close()  # every point written (the writer drains before the run ends)
        tmp.cleanup()
    out = {name: _stats(r) for name, r in rates.items()}
    med = {name: statistics.median(r) for name, r in rates.items()}
    out["step_ms"] = {name: 1000 * batch / m for name, m in med.items()}
    out["engine_vs_bare"] = med["engine"] / med["bare"]
    if "reference" in med:
        out["engine_vs_reference"] = med["engine"] / med["reference"]
    if "flops" not in skip:
        out["flops_per_sample"] = _flops_per_sample(setups["bare"], prec, device, method_name, batch)
    if device.type == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    return out


def _micro_batch_benchmark(loaded, method_name, args, device, prec, batch) -> dict:
    """The engine at `batch` in chunks of `--micro-batch` (gradient caching for FLYP, accumulation for FT)
    against the engine at the chunk size as its whole batch: what a big global batch costs where only the
    small one fits. Run one after the other (not interleaved), so that each peak memory is its own."""
    micro = args.micro_batch
    out = {}
    for label, b, m in (("chunked", batch, micro), ("plain", micro, 0)):
        s = _Setup(loaded, method_name, b, 2, device, prec, args.compile)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        _engine_loop(s, prec, device, args.warmup_steps, m)
        rates = []
        for _ in range(args.repeats):
            _sync(device)
            t0 = time.perf_counter()
            _engine_loop(s, prec, device, args.steps, m)
            _sync(device)
            rates.append(args.steps * b / (time.perf_counter() - t0))
        out[label] = {"batch": b, "micro_batch": m, **_stats(rates)}
        if device.type == "cuda":
            out[label]["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
        del s
    out["chunked_vs_plain"] = out["chunked"]["median"] / out["plain"]["median"]
    return out


def _eval_benchmark(loaded, args, device, prec, batch) -> dict:
    s = _Setup(loaded, "zeroshot", batch, 2, device, prec, args.compile)
    classify = s.method.classifier()
    rates = []
    for r in range(args.repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        with prec.inference():
            for i in range(args.steps):
                classify(s.batches[i % 2][0])
        _sync(device)
        if r:  # the first pass warms up
            rates.append(args.steps * batch / (time.perf_counter() - t0))
    return _stats(rates)


def _loader_benchmark(loaded, args, device) -> dict:
    """Images/s from JPEG files (640x480, a typical photo size) through the train transform and loader."""
    import numpy as np
    from PIL import Image

    from bench.datasets.images import ImageListDataset
    from bench.train.evaluate import make_loader
    from bench.runtime.host import default_workers

    workers = default_workers() if args.workers is None else args.workers
    with tempfile.TemporaryDirectory() as tmp:
        g = np.random.default_rng(0)
        samples = []
        for i in range(args.loader_images):
            arr = (g.random((480, 640, 3)) * 40 + np.linspace(0, 200, 640)[None, :, None]).astype("uint8")
            path = Path(tmp) / f"{i:05d}.jpg"
            Image.fromarray(arr).save(path, quality=90)
            samples.append((path, i % 10))
        out = {"workers": workers, "images": len(samples)}
        for label, reduced in (("reduced_decode", True), ("full_decode", False)):
            ds = ImageListDataset(samples, loaded.train_transform, reduced_decode=reduced)
            loader = make_loader(ds, 32, workers, shuffle=True, device=device, persistent_workers=False)
            rates = []
            for _ in range(2):
                t0 = time.perf_counter()
                n = sum(len(batch[1]) for batch in loader)
                rates.append(n / (time.perf_counter() - t0))
            out[label] = _stats(rates)
    return out


def _lp_benchmark(args) -> dict:
    from bench.perf.probes import benchmark_probe, synthetic_features

    Xtr, ytr, Xva, yva = synthetic_features(4000, 1000, 512, 20)
    Cs = [10.0 ** k for k in range(-3, 4)]
    return benchmark_probe(Xtr, ytr, Xva, yva, Cs, repeats=min(args.repeats, 3))


# --- the command --------------------------------------------------------------------------------------------
def run(args) -> int:
    from bench.model.factory import load_model
    from bench.train.precision import enable_tf32, resolve_precision
    from bench.runtime.host import pick_device

    device = pick_device(args.device)
    prec = resolve_precision(args.precision, device)
    enable_tf32(device)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    for m in methods:
        if m not in ("flyp", "ft"):
            raise BenchError(f"bench perf measures --method flyp and/or ft, got '{m}'.")
    batch = args.batch_size or (256 if device.type == "cuda" else 64)
    if batch < 1 or args.steps < 1 or args.repeats < 1:
        raise BenchError("--batch-size, --steps and --repeats must be >= 1.")
    if args.micro_batch and not 0 < args.micro_batch < batch:
        raise BenchError(f"--micro-batch must be between 1 and the batch size - 1 ({batch - 1}), got {args.micro_batch}.")
    pretrained = args.pretrained or ("default" if args.model == "toy-clip" else None)
    loaded = load_model(args.model, pretrained, device=str(device))
    from bench.perf.peaks import measured_matmul_tflops, spec_peak

    gpu_name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    peak_entry, peak = ("--peak-tflops", args.peak_tflops) if args.peak_tflops else spec_peak(gpu_name, prec.name) \
        if device.type == "cuda" else (None, None)
    measured = measured_matmul_tflops(device, prec.name) if "flops" not in skip else None
    report = {"model": args.model, "pretrained": pretrained, "device": str(device), "precision": prec.name,
              "batch": batch, "steps": args.steps, "repeats": args.repeats, "compile": args.compile,
              "threads": torch.get_num_threads(), "torch": torch.__version__, "peak_tflops": peak,
              "peak_entry": peak_entry, "measured_matmul_tflops": measured,
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None, "train": {}}
    for m in methods:
        res = _train_benchmark(loaded, m, args, device, prec, batch, skip)
        if "flops_per_sample" in res:
            achieved = res["engine"]["median"] * res["flops_per_sample"]
            if peak:
                res["mfu"] = achieved / (peak * 1e12)
            if measured:
                res["mfu_measured"] = achieved / (measured * 1e12)
        report["train"][m] = res
        _print_train(m, res)
        if args.micro_batch:
            res["micro_batch"] = mb = _micro_batch_benchmark(loaded, m, args, device, prec, batch)
            for label in ("chunked", "plain"):
                r = mb[label]
                mem = f", peak memory {r['peak_memory_gib']:.1f} GiB" if "peak_memory_gib" in r else ""
                print(f"  batch {r['batch']:>5} micro-batch {r['micro_batch'] or '-':>5}: {r['median']:10.1f} samples/s "
                      f"({r['min']:.1f}-{r['max']:.1f}){mem}")
            print(f"  chunked/plain {mb['chunked_vs_plain']:.3f} (the price of the big batch per sample)")
    if "eval" not in skip:
        report["eval"] = _eval_benchmark(loaded, args, device, prec, batch)
        print(f"eval      {report['eval']['median']:10.1f} samples/s  (min {report['eval']['min']:.1f}, "
              f"max {report['eval']['max']:.1f})")
    if "loader" not in skip:
        report["loader"] = _loader_benchmark(loaded, args, device)
        ld = report["loader"]
        print(f"loader    {ld['reduced_decode']['median']:10.1f} images/s from 640x480 JPEGs with reduced decode, "
              f"{ld['full_decode']['median']:.1f} with full decode ({ld['workers']} workers)")
    if "lp" not in skip:
        report["lp"] = lp = _lp_benchmark(args)
        se = lp["search"]
        print(f"LP probe  C search ours {se['ours']['median_s']:.2f}s (val {se['ours']['val_acc']:.4f}) vs sklearn "
              f"{se['sklearn']['median_s']:.2f}s (val {se['sklearn']['val_acc']:.4f}): "
              f"{lp['speedup']['search_vs_sklearn']:.1f}x; single fit {lp['speedup']['single_fit_vs_sklearn']:.1f}x")
    Path(args.out).write_text(json.dumps(report, indent=2, sort_keys=True))
    print(f"written: {args.out}")
    return 0


def _print_train(method: str, res: dict) -> None:
    print(f"train {method} (samples/s, median of interleaved runs, min-max):")
    for name in ("engine", "engine+log", "bare", "reference"):
        if name in res:
            r = res[name]
            print(f"  {name:<10} {r['median']:10.1f}  ({r['min']:.1f}-{r['max']:.1f})  {res['step_ms'][name]:8.2f} ms/step")
    if "engine+log" in res:
        ms = res["step_ms"]
        print(f"  logging every step to MLflow: {ms['engine+log'] - ms['engine']:+.2f} ms/step "
              f"({100 * (ms['engine+log'] / ms['engine'] - 1):+.1f}%)")
    line = f"  engine/bare {res['engine_vs_bare']:.3f}"
    if "engine_vs_reference" in res:
        line += f"   engine/reference {res['engine_vs_reference']:.2f}"
    if "flops_per_sample" in res:
        line += f"   {res['flops_per_sample'] / 1e9:.4g} GFLOP/sample (ViT-B/16 reference: {VIT_B16_GFLOP:.0f})"
    if "mfu" in res:
        line += f"   MFU {100 * res['mfu']:.1f}% of spec"
    if "mfu_measured" in res:
        line += f", {100 * res['mfu_measured']:.1f}% of measured matmul"
    if "peak_memory_gib" in res:
        line += f"   peak memory {res['peak_memory_gib']:.1f} GiB"
    print(line)
