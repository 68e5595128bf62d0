"""Planted one-line bugs that the suite must catch: each mutant is applied alone to a temporary copy of the
project (laid out as it installs, first on PYTHONPATH, so subprocesses and spawned ranks import the copy and the
working tree is never touched), its named tests run there, and a table mutant -> tests that failed is printed.
Exits 1 if a mutant survives (all its tests pass) or its line is gone from the source (the list is stale).

    python scripts/mutation_check.py [--only NAME ...] [--no-baseline] [--list]

Run by hand (not part of `make test`): a few minutes on 2 CPU cores. The named tests first run unmutated
(the baseline), so a mutant counts as caught only by tests that pass without it.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIST_JOB = "tests/jobs/test_distributed_job.py::test_two_process_job_matches_the_one_process_job_epoch_by_epoch"


@dataclass
class Mutant:
    name: str
    path: str       # source file, relative to the repository root
    old: str        # exact text, present once
    new: str
    tests: tuple    # pytest node ids, one of which must fail


MUTANTS = [
    Mutant("lifecycle: resume off", "bench/jobs/lifecycle.py",
           "resume = checkpoints.load_latest(self.ckpt_path) if body.resumable else None", "resume = None",
           ("tests/jobs/test_jobs_state.py::test_states_follow_the_job_through_crash_resume_and_a_lost_record",
            "tests/train/test_engine.py::test_interrupted_run_resumes_to_the_same_result[ft]")),
    Mutant("checkpoints: no .prev fallback", "bench/jobs/checkpoints.py",
           "for candidate in (Path(path), prev_path(Path(path))):\n        if not candidate.is_file():",
           "for candidate in (Path(path),):\n        if not candidate.is_file():",
           ("tests/jobs/test_lifecycle.py::test_truncated_checkpoint_falls_back_to_the_previous_one",)),
    Mutant("engine: resume replays the last epoch", "bench/train/engine.py",
           'history, start = resume["history"], resume["epoch"]',
           'history, start = resume["history"][:-1], resume["epoch"] - 1',
           ("tests/train/test_engine.py::test_interrupted_run_resumes_to_the_same_result[ft]",)),
    Mutant("engine: no gradient average over ranks", "bench/train/engine.py",
           "        average_gradients(params)", "        pass",
           (DIST_JOB,)),
    Mutant("engine: loss not normalised by world size", "bench/train/engine.py",
           "sum_over_ranks(loss_sum).item() / max(seen * world, 1)", "sum_over_ranks(loss_sum).item() / max(seen, 1)",
           (DIST_JOB,)),
    Mutant("distributed: gradient sum, not mean", "bench/runtime/distributed.py",
           "flat.div_(rank.world)", "flat.div_(1)",  # AdamW is nearly scale-invariant: compare the gradients
           ("tests/train/test_distributed.py::test_two_gloo_processes_give_the_one_process_loss_gradients_and_metrics",)),
    Mutant("losses: masked CLIP loss one direction only", "bench/model/losses.py",
           "(F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2",
           "F.cross_entropy(logits, target)",
           ("tests/model/test_losses.py::test_masked_loss_drops_same_class_negatives",)),
    Mutant("losses: CLIP loss (open_clip's) replaced by one direction", "bench/model/losses.py",
           "return ClipLoss()(image_features, text_features, logit_scale)",
           "return F.cross_entropy(logit_scale * image_features @ text_features.T, "
           "torch.arange(len(image_features), device=image_features.device))",
           ("tests/model/test_losses.py::test_clip_loss_equals_hand_computed_symmetric_infonce",)),
    Mutant("lifecycle: the job lock ignored", "bench/jobs/lifecycle.py",
           "if not self.lock.acquire(blocking=wait):", "if not self.lock.acquire(blocking=wait) and False:",
           ("tests/jobs/test_lifecycle.py::test_two_concurrent_bench_runs_on_a_fresh_home_share_the_work",)),
    Mutant("WiSE-FT: interpolation swapped", "methods/wiseft.py",
           "(1 - alpha) * v0 + alpha * v1", "alpha * v0 + (1 - alpha) * v1",
           ("tests/jobs/test_wiseft.py::test_interpolate_is_the_convex_combination",)),
    Mutant("report: t quantile one-sided", "reports/paper.py",
           "t.ppf(0.975, df)", "t.ppf(0.95, df)",
           ("tests/reports/test_report_paper.py::test_few_shot_interval_is_a_t_interval_over_draws",)),
    Mutant("report: population std", "reports/aggregate.py",
           "statistics.stdev(scaled)", "statistics.pstdev(scaled)",
           ("tests/reports/test_report.py::test_golden_markdown_latex_csv",)),
    Mutant("launch: a failed rank reported as rank 0", "bench/launch/processes.py",
           "rank, failure = exc.get_first_failure()", "(_, failure), rank = exc.get_first_failure(), 0",
           ("tests/jobs/test_distributed_job.py::test_a_failing_rank_fails_the_job_and_the_error_names_it",)),
    Mutant("ImageNet-R/A: projected columns reversed", "datasets/imagenet_subsets.py",
           "logits[:, self.columns.to(logits.device)]", "logits[:, self.columns.flip(0).to(logits.device)]",
           ("tests/datasets/test_real_imagenet.py::test_200_class_subsets_predict_only_their_classes",)),
    Mutant("toy world: v2 depends on id_val's size", "datasets/toy/source.py",
           "return worlds.shift_split(split, self.sizes[split], self.seed)",
           "return worlds.shift_split(split, self.sizes[split], self.seed + self.sizes['id_val'])",
           ("tests/datasets/test_toy_worlds.py::test_shift_splits_are_deterministic_and_independent",)),
    Mutant("toy fingerprint ignores the image size", "datasets/toy/source.py",
           "digest(self.name, TOY_WORLD_VERSION, self.seed, self.size, sorted(self.sizes.items()))",
           "digest(self.name, TOY_WORLD_VERSION, self.seed, sorted(self.sizes.items()))",
           ("tests/datasets/test_fingerprint.py::test_toy_fingerprint_is_its_generation_parameters",)),
]


def copy_project(dest: Path) -> None:
    """The package as it installs (pyproject's package-dir: methods/ -> bench/methods, ...) plus tests/, scripts/
    and pyproject.toml for pytest; data files come along (model configs, suites)."""
    dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for package, source in sorted(dirs.items(), key=lambda kv: kv[0].count(".")):
        target = dest.joinpath(*package.split("."))
        if not target.exists():
            shutil.copytree(ROOT / source, target, ignore=skip)
    for extra in ("tests", "scripts"):
        shutil.copytree(ROOT / extra, dest / extra, ignore=skip)
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")


def installed_path(dest: Path, path: str) -> Path:
    """Where a repository path lies in the installed layout of the copy."""
    dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, source in sorted(dirs.items(), key=lambda kv: -len(kv[1])):
        if path.startswith(source + "/"):
            return dest.joinpath(*package.split("."), path[len(source) + 1:])
    return dest / path


def run_tests(dest: Path, tests, first_failure: bool = True) -> tuple[list[str], str]:
    """(the node ids that failed or errored, pytest's output tail)."""
    env = {**os.environ, "PYTHONPATH": f"{dest}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *(["-x"] if first_failure else []),
           *tests]
    out = subprocess.run(cmd, cwd=dest, env=env, capture_output=True, text=True)
    text = out.stdout + out.stderr
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", text, re.M)
    if out.returncode != 0 and not failed:
        failed = [f"<pytest exit {out.returncode}>"]
    return failed, text[-3000:]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="run only mutants whose name contains one of these words")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the named tests")
    ap.add_argument("--list", action="store_true", help="print the mutants and their tests, run nothing")
    args = ap.parse_args(argv)
    mutants = [m for m in MUTANTS if not args.only or any(w.lower() in m.name.lower() for w in args.only)]
    if args.list:
        for m in mutants:
            print(f"{m.name}\n    {m.path}: {m.old!r} -> {m.new!r}\n    " + "\n    ".join(m.tests))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-mutants-") as tmp:
        dest = Path(tmp)
        copy_project(dest)
        check = subprocess.run([sys.executable, "-c", "import bench; print(bench.__file__)"], cwd="/",
                               env={**os.environ, "PYTHONPATH": str(dest)}, capture_output=True, text=True)
        if not check.stdout.strip().startswith(str(dest)):
            print(f"mutation_check: the copy is not what imports ({check.stdout.strip() or check.stderr[-500:]})")
            return 2
        if not args.no_baseline:
            tests = list(dict.fromkeys(t for m in mutants for t in m.tests))
            t0 = time.time()
            failed, tail = run_tests(dest, tests, first_failure=False)
            if failed:
                print(f"baseline: these tests fail without any mutant: {failed}\n{tail}")
                return 2
            print(f"baseline: {len(tests)} test(s) pass unmutated ({time.time() - t0:.0f} s)")
        rows, bad = [], 0
        for m in mutants:
            target = installed_path(dest, m.path)
            source = target.read_text()
            if source.count(m.old) != 1:
                rows.append((m.name, "STALE", f"{m.path}: the mutated text is not there once"))
                bad += 1
                continue
            target.write_text(source.replace(m.old, m.new))
            t0 = time.time()
            try:
                failed, _ = run_tests(dest, m.tests)
            finally:
                target.write_text(source)
            caught = bool(failed)
            bad += not caught
            rows.append((m.name, "caught" if caught else "SURVIVED",
                         f"{', '.join(failed) if failed else 'all passed: ' + ', '.join(m.tests)} ({time.time() - t0:.0f} s)"))
            print(f"{m.name}: {rows[-1][1]}", flush=True)
    width = max(len(r[0]) for r in rows)
    print(f"\n| {'mutant':<{width}} | result   | tests that failed |\n|{'-' * (width + 2)}|----------|---|")
    for name, result, detail in rows:
        print(f"| {name:<{width}} | {result:<8} | {detail} |")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
