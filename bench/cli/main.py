"""The `bench` command. Heavy imports (torch, mlflow, ray) happen inside subcommands, so --help is fast."""
from __future__ import annotations

import argparse
import os
import sys

from bench.errors import BenchError
from bench.runtime.logs import setup_logging


class _HelpWithKeys(argparse.Action):
    """-h/--help that also lists the --set keys with their defaults (reading them imports torch, so only here)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from bench.config import COMMON_HPARAMS
        from bench.train.fitted_defaults import WARMUP_FRACTION
        from bench.methods import METHODS

        def show(v):
            return "[" + ", ".join(f"{x:g}" for x in v) + "]" if isinstance(v, list) else repr(v)

        fitted = {"batch_size": "where unset: clamp(training images // 32, 16, 256)",
                  "warmup": f"where unset: {WARMUP_FRACTION:.0%} of all steps"}
        lines = ["--set keys and defaults (a suite, --config or --set changes them; scope one method as METHOD.key):"]
        lines += [f"  {k:<22} {fitted.get(k, show(v))}" for k, v in COMMON_HPARAMS.items()]
        for name in METHODS.names():
            own = getattr(METHODS.get(name), "hparams", {})
            lines += [f"  {name + '.' + k:<22} {show(v)}" for k, v in own.items()]
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = "\n".join(lines)
        parser.print_help()
        parser.exit()


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="train and evaluate methods on a suite's tasks (default: the toy suite)", add_help=False)
    p.add_argument("-h", "--help", action=_HelpWithKeys, help="show this help, with the --set keys and their defaults")
    from bench.sweeps.cli import add_executor_args, add_selection_args

    add_selection_args(p)  # suite, folder, tasks, model, pretrained, seeds, --set, config, experiment, data root
    p.add_argument("--methods", help="comma-separated methods, e.g. zeroshot,lp,ft,lpft,flyp,wiseft")
    p.add_argument("--wise-ft", action="store_true", help="apply WiSE-FT to every finetuning method of the run")
    p.add_argument("--tune", type=int, metavar="N", help="first tune each training method on ID validation: "
                                                         "the suite's setting plus N draws from its sweep space")
    p.add_argument("--no-tune", action="store_true", help="no learning-rate search where nothing sets lr (--folder "
                                                          "data): train at the method's default lr")
    add_executor_args(p)
    p.add_argument("--dry-run", action="store_true", help="print the jobs with their states and exit")
    p.add_argument("--log-model", action="store_true", help="store each finished training job's selected weights "
                                                             "in its MLflow run as a model that loads with open_clip")
    p.add_argument("--register", metavar="NAME", help="with --log-model: also register each logged model in the "
                                                      "MLflow model registry under NAME (one version per job)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="Finetune zero-shot image-text models and measure ID/OOD results.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    lst = sub.add_parser("list", help="list registered methods, datasets, suites or models")
    lst.add_argument("what", choices=["methods", "datasets", "suites", "models"])
    pre = sub.add_parser("pretrain", help="pretrain the toy CLIP on rendered captioned images (writes the bundled checkpoint)")
    pre.add_argument("--seed", type=int, default=0)
    pre.add_argument("--steps", type=int, default=2000)
    pre.add_argument("--corpus-size", type=int, default=60000)
    pre.add_argument("--batch-size", type=int, default=256)
    pre.add_argument("--lr", type=float, default=1e-3)
    pre.add_argument("--objective", choices=["clip", "siglip"], default="clip",
                     help="clip: toy-clip with InfoNCE (the bundled model); siglip: toy-sigmoid with the sigmoid loss")
    pre.add_argument("--out", help="checkpoint path (default: the bundled bench/model/assets/toy-clip.pt); a .json card is written beside it")
    pre.add_argument("--no-eval", action="store_true", help="skip the zero-shot evaluation for the model card")
    from bench.cli import data as data_cli
    from bench.reports import cli as report_cli
    from bench.sweeps import cli as sweep_cli

    report_cli.add_parser(sub)
    data_cli.add_parser(sub)
    from bench.cli import export as export_cli

    export_cli.add_parser(sub)
    sweep_cli.add_parsers(sub)
    from bench.perf import args as perf_args

    perf_args.add_parser(sub)
    ui = sub.add_parser("ui", help="start the MLflow UI on this project's store (127.0.0.1) and print the runs link")
    ui.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000)")
    ui.add_argument("--experiment", help="experiment to link to (default: the most recently created)")
    ui.add_argument("--open", action="store_true", help="open the link in a browser once the server answers")
    return parser


def cmd_run(args) -> int:
    if args.data_root:
        os.environ["BENCH_DATA"] = args.data_root
    from bench.jobs.state import RUN_LAUNCHES, job_states
    from bench.launch.launcher import check_options, launch
    from bench.jobs.plan import plan_from_args
    from bench.sweeps.cli import launch_options, runtime_from

    opts = launch_options(args)
    check_options(opts)
    plan = plan_from_args(args, wise_ft=args.wise_ft, runtime=runtime_from(args, opts.resources))
    if args.executor == "ray" and not args.folder:
        from bench.spec.suites import load_suite
        from bench.sweeps.cli import apply_suite_resources

        apply_suite_resources(args, opts, plan.jobs, load_suite(plan.suite).get("resources"))
    from bench.launch.preflight import check_home, check_tracking_uri
    from bench.tracking.store import tracking_uri

    check_home()
    check_tracking_uri(tracking_uri())
    print_plan(plan, job_states(plan.jobs))
    from bench.model.availability import unfetchable, weights_lines

    for line in weights_lines(plan.jobs):
        print(line)
    if args.tune is not None or args.no_tune:
        if args.tune is not None and args.no_tune:
            raise BenchError("--tune N and --no-tune contradict each other; pass one.")
        plan.lr_search = []
    from bench.sweeps.tune import describe_search

    for line in describe_search(plan):
        print(line)
    if args.dry_run:
        return 0
    offline = unfetchable(plan.jobs) if not args.address else []  # a cluster's nodes may have their own cache
    if offline:
        raise BenchError(offline[0])
    from bench.config import bench_home
    from bench.reports.api import write_report

    wiseft = (plan.wiseft_bases, plan.alphas) if plan.wiseft_bases else None
    tuned, tuned_failures = [], []
    if args.tune is not None:
        from bench.sweeps.tune import tune

        tuned, tuned_failures = tune(args, plan, opts)
    elif plan.lr_search:
        from bench.sweeps.tune import search_lr

        tuned_failures = search_lr(args, plan, opts)
    outcome = launch(plan.jobs, opts, launchable=RUN_LAUNCHES, wiseft=wiseft)
    extra = [j for j in tuned if wiseft and j.method in wiseft[0] and j.run_key not in {p.run_key for p in plan.jobs}]
    if extra:  # WiSE-FT over every tuned configuration, so that selection on ID validation sees them all
        outcome.failed += launch(extra, opts, launchable=RUN_LAUNCHES, wiseft=wiseft).failed
    outcome.failed += tuned_failures
    from bench.jobs.learned import check_learned

    for warning in check_learned(plan):
        print(f"warning: {warning}")
    if args.log_model or args.register:
        from bench.tracking.model_logging import log_models

        log_models(plan.jobs + extra, register=args.register)
    out = bench_home() / "reports" / plan.experiment
    try:
        markdown = write_report(plan.experiment, None, out)
    except (BenchError, OSError) as exc:  # nothing FINISHED to report, or no room to write it
        reason = exc if isinstance(exc, BenchError) else f"cannot write it to {out}: {exc.strerror or exc}"
        if not outcome.failed:
            raise BenchError(f"No report: {reason}") from None
        print(f"\nNo report: {reason}")  # the failure summary, below, comes last: it is the cause
    else:
        print()
        print(markdown)
        print(f"Report (md, LaTeX, CSV, HTML, plots): {out}")
    print(f"MLflow: experiment '{plan.experiment}' in {tracking_uri()}")
    print(f"Browse: {study_link(plan.experiment)}")
    if outcome.failed:
        raise BenchError(failure_summary(plan.experiment, outcome.failed))
    return 0


def failure_summary(experiment: str, failed: list[str]) -> str:
    """Which jobs failed and why (each run's bench.error), then the fix: the last line `bench run` prints."""
    from bench.tracking.store import failure_notes

    failed = list(dict.fromkeys(failed))
    notes = failure_notes(experiment, failed)
    parts = []
    for key in failed:
        name, error = notes.get(key, (key, ""))
        why = error.removeprefix("BenchError: ").splitlines()[0][:400].rstrip(".") if error.strip() else \
            "its error is logged above"
        parts.append(f"{name} ({key}): {why}")
    return (f"{len(failed)} job(s) failed: {'; '.join(parts)}. Fix that, then rerun the same command: finished jobs "
            "are kept and failed ones run again (errors are tagged bench.error in MLflow).")


def study_link(experiment: str) -> str:
    """Where the experiment's runs are: on the tracking server, or on what `bench ui` serves."""
    from bench.tracking.column_view import view_query
    from bench.tracking.store import client, tracking_uri
    from bench.tracking.ui import runs_link

    uri = tracking_uri()
    exp = client(uri).get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else None
    view = view_query(uri, exp_id)  # opens on bench's column view (headline metrics, method, task, seed)
    if uri.startswith(("http://", "https://")):
        return runs_link(uri.rstrip("/"), exp_id) + view
    return f"{runs_link('http://127.0.0.1:5000', exp_id)}{view}  (after `bench ui --experiment {experiment}`)"


def print_plan(plan, states=None) -> None:
    from bench.jobs.state import PENDING, counts

    states = states or [PENDING] * len(plan.jobs)
    print(f"suite {plan.suite}: {len(plan.jobs)} job(s) ({counts(states)})"
          + (f" + WiSE-FT over {','.join(plan.wiseft_bases)} ({len(plan.alphas)} alphas)" if plan.wiseft_bases else ""))
    schedules = plan.schedules or [None] * len(plan.jobs)
    for job, state, schedule in zip(plan.jobs, states, schedules):
        hp = job.hparams
        brief = ", ".join(f"{k}={hp[k]}" for k in ("lr", "wd", "batch_size", "epochs", "warmup") if k in hp)
        steps = f"  ({schedule.brief()})" if schedule else ""
        print(f"  {job.run_key}  {state:<10} {job.task:<14} {job.method:<9} seed {job.seed}  {brief}{steps}")
    for warning in plan.warnings:
        print(f"warning: {warning}")


def cmd_list(args) -> int:
    if args.what == "methods":
        from bench.methods import METHODS

        for name in METHODS.names():
            meta = METHODS._meta[name]
            print(f"{name:<10} {meta.get('label', '')}{'  (derived: interpolates finished runs)' if meta.get('derived') else ''}")
    elif args.what == "datasets":
        from bench.datasets import DATASETS

        for name in DATASETS.names():
            print(f"{name:<16} {DATASETS._meta[name].get('about', '')}")
    elif args.what == "suites":
        from bench.spec.suites import load_suite, suite_names

        for name in suite_names():
            suite = load_suite(name)
            print(f"{name:<20} tasks: {', '.join(suite['tasks'])}")
    else:
        print_models()
    return 0


def print_models() -> None:
    """ARCH  PRETRAINED pairs, as --model and --pretrained take them; then the architectures with no weights."""
    import open_clip

    from bench.model.factory import DEFAULT_CHECKPOINTS, model_names

    archs = model_names()
    pairs = [(a, "default") for a, path in DEFAULT_CHECKPOINTS.items() if path.exists()]
    pairs += [(a, t) for a, t in open_clip.list_pretrained() if a in archs]
    width = max(len(a) for a, _ in pairs) + 2
    print(f"{'--model':<{width}}--pretrained")
    from bench.model.offline import cached_file

    for arch, tag in pairs:
        cached = tag != "default" and cached_file(open_clip.get_pretrained_cfg(arch, tag))
        note = "  (bundled with bench)" if tag == "default" else "  (cached locally)" if cached else ""
        print(f"{arch:<{width}}{tag}{note}")
    bare = sorted(set(archs) - {a for a, _ in pairs})
    print(f"\nNo published weights (train from --pretrained none, or give a checkpoint file): {', '.join(bare)}")


def cmd_ui(args) -> int:
    from bench.tracking.ui import serve

    return serve(args.port, args.experiment, open_browser=args.open)


def cmd_report(args) -> int:
    from bench.reports import cli as report_cli

    return report_cli.run(args)


def cmd_data(args) -> int:
    from bench.cli import data as data_cli

    return data_cli.run(args)


def cmd_export(args) -> int:
    from bench.cli import export as export_cli

    return export_cli.run(args)


def cmd_pretrain(args) -> int:
    from bench.train.pretrain_toy import main as pretrain_main

    return pretrain_main(args)


def cmd_perf(args) -> int:
    from bench.perf import command as perf

    return perf.run(args)


def cmd_sweep(args) -> int:
    from bench.sweeps import cli as sweep_cli

    return sweep_cli.cmd_sweep(args)


def cmd_status(args) -> int:
    from bench.sweeps import cli as sweep_cli

    return sweep_cli.cmd_status(args)


def cmd_clean(args) -> int:
    from bench.sweeps import cli as sweep_cli

    return sweep_cli.cmd_clean(args)


COMMANDS = {"run": cmd_run, "list": cmd_list, "ui": cmd_ui, "pretrain": cmd_pretrain, "report": cmd_report, "data": cmd_data,
            "sweep": cmd_sweep, "status": cmd_status, "clean": cmd_clean, "perf": cmd_perf, "export": cmd_export}


def main(argv: list[str] | None = None) -> int:
    from bench.runtime.signals import Terminated, terminate_as_interrupt

    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        with terminate_as_interrupt():
            return COMMANDS[args.command](args)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"bench: {what}; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return getattr(exc, "exit_code", 130)
