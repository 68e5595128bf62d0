"""`bench data` subcommands, for bench/cli/main.py to mount:

    bench data check [--suite S] [--data-root DIR]   found or missing, counts, layout problems, where to get data
    bench data fake --suite S --root DIR             tiny fake copies in the real layouts (then BENCH_DATA=DIR)

Wiring: `add_parser(subparsers)` adds `data`; `run(args)` runs it and returns the exit code.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.errors import BenchError


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("data", help="check the real datasets a suite needs, or write fake copies of them")
    sub = p.add_subparsers(dest="data_command", required=True)
    c = sub.add_parser("check", help="report, for each dataset of a suite, whether it is found and complete")
    c.add_argument("--suite", help="suite name (default: every real dataset)")
    c.add_argument("--data-root", help="dataset root (default: BENCH_DATA)")
    f = sub.add_parser("fake", help="write tiny fake copies of a suite's datasets in their real layouts")
    f.add_argument("--suite", required=True, help="suite name, e.g. distribution-shift")
    f.add_argument("--root", required=True, help="folder to write them to; then run with BENCH_DATA=<root>")
    return p


def run(args) -> int:
    from bench.datasets.real import data_root

    if args.data_command == "check":
        from bench.datasets.check import check
        from bench.spec.suites import load_suite

        suite = load_suite(args.suite) if args.suite else None  # an unknown suite is named before the data root
        report, rc = check(suite, data_root(getattr(args, "data_root", None)))
        print(report)
        return rc
    if args.data_command == "fake":
        return _fake(args.suite, Path(args.root).expanduser())
    raise BenchError(f"Unknown data command '{args.data_command}'; use check or fake.")


def _fake(suite_name: str, root: Path) -> int:
    from bench.datasets.check import suite_datasets
    from bench.datasets.fake_real import FAKERS, make_fake
    from bench.spec.suites import load_suite

    names = list(dict.fromkeys(spec["name"] for spec in suite_datasets(load_suite(suite_name))))
    made = [n for n in names if n in FAKERS]
    for n in made:
        make_fake(n, root)
    skipped = [n for n in names if n not in FAKERS]
    print(f"wrote fake {', '.join(made) or 'nothing'} under {root.resolve()}"
          + (f" ({', '.join(skipped)}: generated, no files needed)" if skipped else ""))
    if made:
        print(f"use it with: BENCH_DATA={root.resolve()} bench run --suite {suite_name} ...")
    return 0
