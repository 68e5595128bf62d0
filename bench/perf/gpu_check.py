"""The prepared GPU check: every figure of the GPU runner in one go, on a single-GPU machine with no internet,
inside its own 8-minute budget, its JSON rewritten after every section (a failure late loses nothing earlier).

    # here, once: the pinned wheels the GPU image lacks, and the project's own wheel, into .gpu-wheels/
    python -m bench.perf.gpu_check --prepare
    # on the GPU machine (carry .gpu-wheels), from the repository root:
    pip install -q --no-index --no-deps .gpu-wheels/*.whl && python -P -m bench.perf.gpu_check --out "$OUT"
    # here, before spending GPU minutes: the same install and the check in smoke mode, on CPU, in a fresh
    # Python 3.12 virtual environment holding only the GPU image's packages
    python -m bench.perf.gpu_check --rehearse

`-P` keeps the repository root off sys.path, so the installed wheel (whose `bench.methods` and friends live in
top-level folders here) is what runs. The GPU image has Python 3.12.3, torch 2.11.0, torchvision 0.26.0 and the
packages in IMAGE_PACKAGES; it lacks open_clip_torch, ftfy, wcwidth, mlflow, ray and wilds. open_clip 3.3 needs
timm >= 1.0.17, so a pinned timm is carried too (installed over the image's, whatever its version).

Sections, each in its own process with a timeout cut to the budget left (a section that cannot start in time is
recorded as skipped):
1. peaks: the device, its dense spec peak and a measured 8192-cube matmul (bench.perf.peaks);
2. perf: `bench perf` at real scale: ViT-B/16 random weights, FLYP and FT at batch 256 in bf16, engine vs bare
   vs reference-style loop, step time with and without MLflow logging (skipped where mlflow is absent), peak
   memory, FLOPs per sample, MFU against spec and measured peaks, evaluation and JPEG-loader throughput, LP;
3. grad_cache: FLYP at a global batch of 512 by gradient caching in chunks of 128, against batch 128 plain;
4. flyp_short: a short FLYP job on fake ImageNet-layout data (a 1,000-class x 80-template zero-shot head every
   epoch), without MLflow.
Results: $OUT/summary.json, $OUT/peaks.json, $OUT/perf-vitb16.json, $OUT/perf-grad-cache.json, $OUT/flyp-short.json.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

BUDGET_S = 480          # the whole check, by its own clock
RESERVE_S = 15          # kept back for writing the summary
# Pure-Python wheels (py3-none-any) the GPU image lacks, version-locked; the project's own wheel joins them.
PINNED_WHEELS = {"open_clip_torch": "3.3.0", "ftfy": "6.3.1", "wcwidth": "0.9.5", "timm": "1.0.31"}
IMAGE = {"python": "3.12.3", "torch": "2.11.0", "torchvision": "0.26.0"}
IMAGE_PACKAGES = [f"torch=={IMAGE['torch']}", f"torchvision=={IMAGE['torchvision']}", "timm", "regex",
                  "huggingface-hub", "safetensors", "numpy", "pandas", "scikit-learn", "pyyaml", "tqdm", "pillow"]
NOT_IN_IMAGE = ["open_clip", "ftfy", "wcwidth", "mlflow", "ray", "wilds"]
WHEEL_DIR = Path(".gpu-wheels")
REPO = Path(__file__).resolve().parents[2]


# --- the wheels -----------------------------------------------------------------------------------------------
def prepare(dest: Path = WHEEL_DIR, python: str = sys.executable) -> list[Path]:
    """The pinned wheels for Python 3.12 and the project's wheel in `dest` (emptied first), with a manifest of
    their sha256 digests. Raises on any failure."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):
        old.unlink()
    pins = [f"{name}=={version}" for name, version in PINNED_WHEELS.items()]
    _check([python, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
            "--implementation", "py", "-d", str(dest), *pins])
    _check([python, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dest), str(REPO)])
    wheels = sorted(dest.glob("*.whl"))
    manifest = {w.name: hashlib.sha256(w.read_bytes()).hexdigest() for w in wheels}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return wheels


def install_command(python: str, dest: Path = WHEEL_DIR) -> list[str]:
    """What the GPU machine runs, and what the rehearsal runs: offline, no dependency resolution."""
    return [python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", *map(str, sorted(Path(dest).glob("*.whl")))]


def _check(cmd: list[str], **kw) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-3000:]}")


# --- the sections ---------------------------------------------------------------------------------------------
def _settings(smoke: bool) -> dict:
    if smoke:  # the same code paths on CPU in seconds
        return {"device": "cpu", "model": "bench-tiny", "precision": "bf16", "batch": "8", "micro": "4", "steps": "2",
                "warmup": "1", "repeats": "1", "loader_images": "16", "flyp_model": "bench-tiny", "flyp_epochs": 1,
                "flyp_precision": "fp32"}  # CPU bf16 is slower than fp32; perf covers bf16 autocast
    return {"device": "cuda", "model": "ViT-B-16", "precision": "bf16", "batch": "256", "micro": "128", "steps": "10",
            "warmup": "5", "repeats": "3", "loader_images": "512", "flyp_model": "ViT-B-16", "flyp_epochs": 2,
            "flyp_precision": "bf16"}


def _bench_args(section: str, out: Path, s: dict) -> list[str]:
    if section == "perf":
        skip = [] if importlib.util.find_spec("mlflow") else ["logging"]  # the image has no MLflow
        skip += ["lp"] if s["device"] == "cpu" else []  # the probe's scikit-learn race: minutes on a CPU, no GPU path
        return ["perf", "--model", s["model"], "--pretrained", "none", "--method", "flyp,ft", "--batch-size", s["batch"],
                "--precision", s["precision"], "--device", s["device"], "--steps", s["steps"],
                "--warmup-steps", s["warmup"], "--repeats", s["repeats"], "--loader-images", s["loader_images"],
                *(["--skip", ",".join(skip)] if skip else []), "--out", str(out / "perf-vitb16.json")]
    if section == "grad_cache":
        batch = str(2 * int(s["batch"]))
        return ["perf", "--model", s["model"], "--pretrained", "none", "--method", "flyp", "--batch-size", batch,
                "--micro-batch", s["micro"], "--precision", s["precision"], "--device", s["device"], "--steps", "4",
                "--warmup-steps", "2", "--repeats", "2", "--skip", "reference,logging,eval,loader,lp,flops",
                "--out", str(out / "perf-grad-cache.json")]
    raise ValueError(section)


def peaks_section(out: Path, smoke: bool) -> dict:
    import torch

    from bench.perf.peaks import measured_matmul_tflops, spec_peak
    from bench.train.precision import resolve_precision

    s = _settings(smoke)
    device = torch.device(s["device"])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    result = {"device": name, "torch": torch.__version__, "auto_precision": resolve_precision("auto", device).name}
    for precision in ("bf16", "fp32"):
        entry, peak = spec_peak(name, precision)
        result[precision] = {"spec_entry": entry, "spec_tflops": peak,
                             "measured_tflops": measured_matmul_tflops(device, precision)}
    (out / "peaks.json").write_text(json.dumps(result, indent=2))
    return result


def flyp_section(out: Path, smoke: bool) -> dict:
    import tempfile

    s = _settings(smoke)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["BENCH_DATA"] = str(root / "data")
        os.environ["BENCH_HOME"] = str(root / "home")
        from bench.datasets.fake_real import make_fake
        from bench.jobs.lifecycle import train_one
        from bench.jobs.plan import build_plan

        for name in ("imagenet", "imagenetv2", "imagenet-r", "imagenet-a", "imagenet-sketch", "objectnet"):
            make_fake(name, root / "data")
        plan = build_plan(suite="distribution-shift", tasks="imagenet", methods="flyp", model=s["flyp_model"],
                          pretrained="none", sets=[f"epochs={s['flyp_epochs']}", "batch_size=8", "warmup=1"],
                          runtime={"device": s["device"], "workers": 0 if smoke else 4, "eval_batch_size": 256,
                                   "precision": s["flyp_precision"]})
        t0 = time.time()
        summary = train_one(plan.jobs[0])
    result = {"seconds": time.time() - t0, "summary": summary}
    (out / "flyp-short.json").write_text(json.dumps(result, indent=2, default=str))
    return result


IN_PROCESS = {"peaks": peaks_section, "flyp_short": flyp_section}
SECTIONS = ["peaks", "perf", "grad_cache", "flyp_short"]


def _run_section(section: str, out: Path, smoke: bool, timeout: float) -> dict:
    """One section in its own process (a crash or hang there loses only that section), killed at `timeout`."""
    if section in IN_PROCESS:
        cmd = [sys.executable, "-P", "-m", "bench.perf.gpu_check", "--section", section, "--out", str(out),
               *(["--smoke"] if smoke else [])]
    else:
        cmd = [sys.executable, "-P", "-m", "bench", *_bench_args(section, out, _settings(smoke))]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    if smoke:  # one thread: a shared CPU machine oversubscribed by torch's thread pools crawls
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stdout or b"")[-3000:]
        return {"ok": False, "error": f"timed out after {timeout:.0f}s (the check's budget)",
                "output": tail.decode(errors="replace") if isinstance(tail, bytes) else tail}
    return {"ok": done.returncode == 0, "exit_code": done.returncode,
            "output": (done.stdout[-4000:] + done.stderr[-4000:])}


def check(out: Path, smoke: bool = False, budget_s: float = BUDGET_S) -> dict:
    """Every section within `budget_s`; summary.json rewritten after each. Returns the summary."""
    import platform

    start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    summary = {"smoke": smoke, "budget_s": budget_s, "python": platform.python_version(), "sections": {}}
    for section in SECTIONS:
        left = budget_s - RESERVE_S - (time.time() - start)
        t0 = time.time()
        if left < 20:
            summary["sections"][section] = {"ok": False, "skipped": f"budget spent ({left:.0f}s left)"}
        else:
            try:
                summary["sections"][section] = _run_section(section, out, smoke, left)
            except Exception as exc:  # keep going: every figure that can be had in one lease
                summary["sections"][section] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                                                "trace": traceback.format_exc()}
        summary["sections"][section]["seconds"] = round(time.time() - t0, 1)
        summary["elapsed_s"] = round(time.time() - start, 1)
        _write_json(out / "summary.json", summary)
        res = summary["sections"][section]
        print(f"[gpu_check] {section}: {'ok' if res['ok'] else res.get('error') or res.get('skipped') or 'failed'} "
              f"({res['seconds']:.0f}s)", flush=True)
    return summary


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(path)


# --- the rehearsal --------------------------------------------------------------------------------------------
def find_python312() -> str:
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python")))
    if found:
        return found[-1]
    from shutil import which

    if which("python3.12"):
        return which("python3.12")
    raise RuntimeError("No Python 3.12 here (pyenv install 3.12, or put python3.12 on PATH).")


def rehearse(root: Path, budget_s: float = BUDGET_S, reuse_venv: bool = False) -> dict:
    """A fresh Python 3.12 venv holding only the GPU image's packages; the carried wheels installed offline as the
    GPU run installs them; the check in smoke mode on CPU, from the repository root, with -P. With `reuse_venv`,
    a venv an earlier rehearsal built is kept (the image's packages take GBs) and only the carried wheels are
    uninstalled and installed again."""
    root.mkdir(parents=True, exist_ok=True)
    venv = root / "venv"
    py = str(venv / "bin" / "python")
    report: dict = {"python312": find_python312(), "reused_venv": reuse_venv and Path(py).is_file()}
    if not report["reused_venv"]:
        _check([report["python312"], "-m", "venv", "--clear", str(venv)])
        t0 = time.time()
        _check([py, "-m", "pip", "install", "-q", *IMAGE_PACKAGES])
        report["image_install_s"] = round(time.time() - t0, 1)
    report["wheels"] = [w.name for w in prepare(root / "wheels")]
    if report["reused_venv"]:
        carried = [w.name.split("-")[0] for w in (root / "wheels").glob("*.whl")]
        _check([py, "-m", "pip", "uninstall", "-q", "-y", *carried])
    _check(install_command(py, root / "wheels"))
    probe = ("import importlib.util, json, platform, torch, torchvision, timm, open_clip, bench.methods, bench.datasets;"
             f"print(json.dumps({{'python': platform.python_version(), 'torch': torch.__version__, "
             f"'torchvision': torchvision.__version__, 'timm': timm.__version__, 'open_clip': open_clip.__version__, "
             f"'absent': [m for m in {NOT_IN_IMAGE[3:]!r} if importlib.util.find_spec(m) is None]}}))")
    done = subprocess.run([py, "-P", "-c", probe], capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        raise RuntimeError(f"the installed environment does not import: {done.stderr[-3000:]}")
    report["environment"] = json.loads(done.stdout.strip().splitlines()[-1])
    out = root / "out"
    t0 = time.time()
    done = subprocess.run([py, "-P", "-m", "bench.perf.gpu_check", "--smoke", "--out", str(out),
                           "--budget", str(budget_s)], capture_output=True, text=True, cwd=REPO)
    report["check_s"] = round(time.time() - t0, 1)
    report["check_exit"] = done.returncode
    report["summary"] = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else None
    report["ok"] = done.returncode == 0
    _write_json(root / "rehearsal.json", report)
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.perf.gpu_check")
    p.add_argument("--prepare", action="store_true", help="pinned wheels and the project's wheel into .gpu-wheels/")
    p.add_argument("--rehearse", action="store_true", help="the GPU run's install and a smoke check, on CPU, in a "
                                                            "fresh Python 3.12 venv with only the GPU image's packages")
    p.add_argument("--rehearse-dir", default="gpu-check/rehearsal", help="where the rehearsal builds (default %(default)s)")
    p.add_argument("--reuse-venv", action="store_true", help="with --rehearse: keep an earlier rehearsal's venv "
                                                              "(the image's packages) and reinstall only the wheels")
    p.add_argument("--smoke", action="store_true", help="tiny model, CPU, a few steps: the code paths, not figures")
    p.add_argument("--section", choices=SECTIONS, help=argparse.SUPPRESS)  # one in-process section (a child)
    p.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for the whole check (default %(default)s)")
    p.add_argument("--out", default="gpu-check", help="folder for the JSON results")
    args = p.parse_args(argv)
    if args.prepare:
        wheels = prepare()
        print("\n".join(f"{w}" for w in wheels))
        print("on the GPU machine: " + " ".join(install_command("python", WHEEL_DIR)[:-len(wheels)]) + " .gpu-wheels/*.whl")
        return 0
    if args.rehearse:
        report = rehearse(Path(args.rehearse_dir), args.budget, args.reuse_venv)
        env = report["environment"]
        print(f"[rehearsal] Python {env['python']}, torch {env['torch']}, torchvision {env['torchvision']}, timm "
              f"{env['timm']}, open_clip {env['open_clip']}; absent as on the GPU image: {', '.join(env['absent'])}")
        for name, res in (report["summary"] or {}).get("sections", {}).items():
            print(f"[rehearsal] {name}: {'ok' if res['ok'] else res.get('error') or res.get('skipped') or 'failed'} "
                  f"({res['seconds']:.0f}s)")
        print(f"[rehearsal] {'passed' if report['ok'] else 'FAILED'} in {report['check_s']:.0f}s; "
              f"{Path(args.rehearse_dir) / 'rehearsal.json'}")
        return 0 if report["ok"] else 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.section:
        IN_PROCESS[args.section](out, args.smoke)
        return 0
    summary = check(out, args.smoke, args.budget)
    return 0 if all(s.get("ok") for s in summary["sections"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
