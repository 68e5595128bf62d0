"""`bench report`: the subcommand's options and its entry point (bench/cli/main.py wires them in).

Only argparse is imported at module level, so `bench --help` stays fast.
"""
from __future__ import annotations


def add_parser(subparsers):
    p = subparsers.add_parser(
        "report", help="paper-style ID/OOD tables and plots from the MLflow store (Markdown, LaTeX, CSV, HTML)",
        description="Read finished runs from MLflow, select hyperparameters, epoch and WiSE-FT alpha per seed on ID "
                    "validation, average over seeds and write tables and plots.")
    p.add_argument("--suite", help="suite whose experiment to report (default experiment: the suite's name; "
                                   "with --experiment, keeps only that suite's runs)")
    p.add_argument("--experiment", help="MLflow experiment name (default: the suite's name, else 'toy')")
    p.add_argument("--format", default="md,latex,csv,html", help="comma-separated: md, latex, csv, html (default: all)")
    p.add_argument("--out", help="output folder (default: $BENCH_HOME/reports/<experiment>)")
    p.add_argument("--selection", default="id_val",
                   help="id_val (default): choose on ID validation; oracle: choose on OOD test (labelled upper bound)")
    p.add_argument("--reference", metavar="FILE.csv",
                   help="published numbers to show beside ours: CSV with method,task,dataset,metric,value "
                        "(see reports/README.md)")
    p.add_argument("--model", help="only this model (architecture or the label shown in the tables)")
    p.add_argument("--layout", choices=("paper", "tasks"),
                   help="paper: the paper's table shapes (Table 1 with per-shift detail, transfer datasets as "
                        "columns, few-shot k as columns with 95%% intervals); tasks: one table per task with every "
                        "set. Default: paper for the suites distribution-shift, transfer, few-shot and toy")
    p.add_argument("--no-plots", action="store_true", help="skip the figures (faster)")
    return p


def run(args) -> int:
    from pathlib import Path

    from bench.reports.api import write_report

    name = args.experiment or args.suite or "toy"
    if args.out:
        out = Path(args.out)
    else:
        from bench.config import bench_home
        from bench.reports.labels import slug

        out = bench_home() / "reports" / slug(name)
    markdown = write_report(args.experiment, args.suite, out, formats=args.format, selection=args.selection,
                            reference=args.reference, model=args.model, plots=not args.no_plots,
                            layout=args.layout)
    print(markdown, end="")
    print(f"\nReport written to {out}")
    return 0
