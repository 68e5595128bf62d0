"""`bench sweep`, `bench status` and `bench clean`: options and entry points (bench/cli/main.py wires them in).

    bench sweep --method flyp --task iwildcam --suite distribution-shift --executor ray --asha
    bench status [--suite S]                 job states of the suite's run and of its recorded sweeps
    bench clean --incomplete [--yes]         delete unfinished jobs (directories and MLflow runs)

Only argparse is imported at module level, so `bench --help` stays fast.
"""
from __future__ import annotations

import sys

from bench.errors import BenchError


def add_selection_args(p) -> None:
    """The job-selection options shared with `bench run` (singular flags are accepted as aliases)."""
    p.add_argument("--suite", help="suite name (see `bench list suites`); default: toy")
    p.add_argument("--folder", help="your own ImageFolder tree: DIR/{train,val,test,<ood splits>}/<class>/*")
    p.add_argument("--tasks", "--task", dest="tasks", help="comma-separated task names of the suite (default: all)")
    p.add_argument("--model", help="open_clip architecture (see `bench list models`)")
    p.add_argument("--pretrained", help="open_clip pretrained tag, or a local checkpoint file (none: random init)")
    p.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2 (default: the suite's)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a hyperparameter of the default point and of every point (lr=3e-5, flyp.epochs=5)")
    p.add_argument("--config", help="YAML file with any of: suite, tasks, methods, seeds, model, pretrained, hparams")
    p.add_argument("--experiment", help="MLflow experiment name (default: the suite's name)")
    p.add_argument("--data-root", help="dataset root (sets BENCH_DATA)")


def add_executor_args(p) -> None:
    p.add_argument("--executor", default="local", choices=["local", "ray", "slurm"],
                   help="local: one job after another in this process (default); ray: Ray Tune trials; slurm: one "
                        "SLURM job array per launch, through submitit (docs/clusters.md)")
    p.add_argument("--resources", metavar="cpu=N,gpu=M",
                   help="per Ray trial (default: the suite's `resources`, else cpu=1 and gpu=1 when the cluster has GPUs)")
    p.add_argument("--max-concurrent", type=int, help="most Ray trials at once (default: as many as resources allow)")
    p.add_argument("--address", help="join an existing Ray cluster: HOST:PORT, ray://HOST:PORT or auto "
                                     "(default: start Ray on this machine); $BENCH_HOME must be on storage every node sees")
    p.add_argument("--max-failures", type=int, default=0,
                   help="Ray retries of a crashed trial in this invocation (default 0: rerun the command to resume)")
    p.add_argument("--gpus", "--gpus-per-trial", dest="gpus", type=int, default=1, metavar="N",
                   help="processes per training job, one GPU each, with one global batch (default 1). Locally: "
                        "torch elastic on this machine; with --executor ray: a Ray Train trial of N workers. With "
                        "--device cpu, N gloo processes (to try it without GPUs)")
    p.add_argument("--micro-batch", type=int, default=0, metavar="N",
                   help="at most N images per forward pass on each device; the loss and gradients stay those of the "
                        "whole batch (gradient caching for FLYP, accumulation for FT and the rest). Default 0: "
                        "the whole per-device batch at once")
    p.add_argument("--device", default="auto", help="cuda, cpu or auto (default)")
    p.add_argument("--workers", type=int, default=None, help="data-loading worker processes per job")
    p.add_argument("--eval-batch-size", type=int, default=256)
    p.add_argument("--precision", default="auto", help="auto (bf16 on capable GPUs, fp16 + loss scaling on others, "
                                                       "fp32 on CPU), bf16, fp16 or fp32")
    p.add_argument("--compile", action="store_true", help="torch.compile the image and text towers (GPU runs)")
    p.add_argument("--log-every", type=int, default=10, metavar="N",
                   help="log training loss, learning rate and temperature to MLflow every N steps (default 10)")
    add_slurm_args(p)


def add_slurm_args(p) -> None:
    g = p.add_argument_group("SLURM (--executor slurm; docs/clusters.md)")
    g.add_argument("--slurm-partition", help="partition to submit to (default: the cluster's default)")
    g.add_argument("--slurm-time", default="60", metavar="MIN|HH:MM:SS",
                   help="time limit per job (default 60 minutes); 90 s before it the job checkpoints and is requeued")
    g.add_argument("--slurm-gpus-per-job", type=int, metavar="N", help="GPUs per job; the job runs as N processes "
                   "(as --gpus N) inside its allocation (default: --gpus, or 0 with --device cpu)")
    g.add_argument("--slurm-cpus-per-gpu", type=int, metavar="N", help="CPUs per process (one for the model, the "
                   "rest load data; default 4 per GPU, 1 with --device cpu)")
    g.add_argument("--slurm-mem", metavar="SIZE", help="memory per job, as sbatch --mem takes it (e.g. 32G)")
    g.add_argument("--slurm-account", help="account to charge (sbatch --account)")
    g.add_argument("--slurm-qos", help="quality of service (sbatch --qos)")
    g.add_argument("--slurm-extra", action="append", default=[], metavar="KEY=VALUE",
                   help="any other sbatch option, e.g. constraint=a100 or exclude=node3 (repeatable)")
    g.add_argument("--slurm-parallel", type=int, metavar="N", help="most jobs of the array running at once")
    g.add_argument("--slurm-shared", action="store_true", help="BENCH_HOME and the SQLite store are on storage "
                   "every node mounts at the same path (when bench cannot tell)")
    g.add_argument("--wait", action="store_true", help="with --executor slurm: follow the jobs to their end (then "
                   "`bench run` runs WiSE-FT and the report); without it the command returns after submission")


def add_parsers(sub) -> None:
    s = sub.add_parser("sweep", help="sweep hyperparameters of one method (locally or on Ray Tune); reruns resume",
                       description="Enumerate the points of a sweep space (the suite's setting first), run the pending "
                                   "and incomplete jobs, and record one MLflow parent run with a child per trial.")
    s.add_argument("--methods", "--method", dest="method", required=True,
                   help="the one method to sweep, e.g. flyp (--method is an alias)")
    add_selection_args(s)
    s.add_argument("--space", help="sweep space: a YAML file or a bundled name (default: sweeps/spaces/<method>.yaml, "
                                   "else default.yaml); see sweeps/README.md")
    s.add_argument("--num-samples", type=int, help="random draws (per grid point) after the default point "
                                                  "(default: the space's num_samples)")
    s.add_argument("--space-seed", type=int, default=0, help="seed of the hyperparameter sampler (default 0)")
    add_executor_args(s)
    s.add_argument("--asha", action="store_true", help="stop poor trials early (ASHA on the ID-validation metric; ray only)")
    s.add_argument("--grace-period", type=int, default=1, help="ASHA: epochs before a trial can be stopped (default 1)")
    s.add_argument("--reduction-factor", type=float, default=2, help="ASHA: keep 1/this of the trials per rung (default 2)")
    s.add_argument("--metric", help="what ASHA compares and `best` means: a metric key the engine logs each epoch "
                                    "(default: the task's ID-validation metric; val/loss is smoother on small sets)")
    s.add_argument("--mode", choices=["max", "min"], help="for --metric (default: min for losses, else max)")
    s.add_argument("--dry-run", action="store_true", help="print the sweep's jobs with their states and exit")
    s.add_argument("--wise-ft", action="store_true", help="also WiSE-FT over the sweep's uniform and greedy soups")

    st = sub.add_parser("status", help="job states (pending, incomplete, stopped, done) of a suite's run and sweeps")
    add_selection_args(st)
    st.add_argument("--methods", "--method", dest="methods", help="comma-separated methods (default: the suite's)")
    st.add_argument("--jobs", action="store_true", help="list every job, not only the counts")

    c = sub.add_parser("clean", help="delete unfinished jobs: their directories and MLflow runs (asks first)")
    c.add_argument("--incomplete", action="store_true", help="delete incomplete jobs (checkpoints, unfinished runs)")
    c.add_argument("--stopped", action="store_true", help="also delete jobs stopped early by ASHA")
    c.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation (for scripts)")


def runtime_from(args, resources: dict | None = None) -> dict:
    from bench.train.options import check_runtime
    from bench.runtime.host import default_workers

    executor = getattr(args, "executor", "local")
    if executor == "slurm" and args.slurm_gpus_per_job:
        args.gpus = args.slurm_gpus_per_job  # N processes inside the job's allocation
    if args.workers is not None:
        workers = args.workers
    elif executor == "slurm":
        workers = _slurm_cpus_per_process(args) - 1  # the job's CPUs, one for the model
    elif getattr(args, "executor", "local") == "ray":
        workers = max(0, int((resources or {}).get("cpu", 1)) - 1)  # the trial's CPUs, one for the model
    else:
        workers = default_workers()
    runtime = {"device": args.device, "eval_batch_size": args.eval_batch_size, "workers": workers,
               "precision": args.precision, "compile": bool(args.compile), "log_every": args.log_every,
               "nproc": args.gpus, "micro_batch": args.micro_batch}
    if args.micro_batch < 0:
        raise BenchError(f"--micro-batch must be an integer >= 0 (0: the whole batch at once), got {args.micro_batch}.")
    if args.gpus < 1:
        raise BenchError(f"--gpus must be an integer >= 1 (processes per training job), got {args.gpus}.")
    if getattr(args, "executor", "local") == "local":
        from bench.launch.processes import check_local_gpus

        check_local_gpus(args.gpus, args.device)
    if args.log_every < 1:
        raise BenchError(f"--log-every must be an integer >= 1 (steps between MLflow points), got {args.log_every}.")
    # Under Ray the jobs run on the cluster's nodes: check the device name here, its existence there.
    return check_runtime(runtime, local=getattr(args, "executor", "local") == "local")


def launch_options(args, suite_resources: dict | None = None):
    from bench.launch.launcher import LaunchOptions, parse_resources

    resources = parse_resources(args.resources)
    if resources is None and args.executor == "ray" and suite_resources:
        resources = {k: float(v) for k, v in suite_resources.items()}
    asha = {"grace_period": args.grace_period, "reduction_factor": args.reduction_factor} if getattr(args, "asha", False) else None
    return LaunchOptions(executor=args.executor, address=args.address, resources=resources,
                         max_concurrent=args.max_concurrent, asha=asha, max_failures=args.max_failures,
                         slurm=slurm_options(args))


def _slurm_cpus_per_process(args) -> int:
    return args.slurm_cpus_per_gpu or (1 if args.device == "cpu" else 4)


def parse_slurm_time(text: str) -> int:
    """SLURM's time formats (MIN, MIN:SS, H:MM:SS, D-H, D-H:MM, D-H:MM:SS) -> whole minutes."""
    days, _, rest = text.strip().rpartition("-") if "-" in text else ("0", "", text.strip())
    try:
        parts = [int(x) for x in rest.split(":")]
        day = int(days or 0)
    except ValueError:
        parts, day = [], 0
    if not parts or len(parts) > 3 or any(x < 0 for x in parts) or ("-" in text and len(parts) > 3):
        raise BenchError(f"--slurm-time expects minutes or [D-]HH:MM:SS (as sbatch --time), got '{text}'.")
    if "-" in text:  # D-H, D-H:MM, D-H:MM:SS
        h, m, sec = (parts + [0, 0])[:3]
    elif len(parts) == 3:
        h, m, sec = parts
    else:  # MIN or MIN:SS
        h, m, sec = 0, parts[0], (parts[1] if len(parts) > 1 else 0)
    minutes = day * 1440 + h * 60 + m + (1 if sec else 0)
    if minutes < 1:
        raise BenchError(f"--slurm-time must be at least one minute, got '{text}'.")
    return minutes


def slurm_options(args) -> dict | None:
    """The --slurm-* options as sweeps/slurm_executor.py takes them; refused with another executor."""
    given = [f"--{k.replace('_', '-')}" for k in ("slurm_partition", "slurm_gpus_per_job", "slurm_cpus_per_gpu",
                                                  "slurm_mem", "slurm_account", "slurm_qos", "slurm_extra",
                                                  "slurm_parallel", "slurm_shared", "wait") if getattr(args, k, None)]
    if getattr(args, "executor", "local") != "slurm":
        if given:
            raise BenchError(f"{', '.join(given)} apply to --executor slurm only.")
        return None
    extra = {}
    for item in args.slurm_extra:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise BenchError(f"--slurm-extra expects KEY=VALUE (an sbatch option without its dashes, e.g. "
                             f"constraint=a100), got '{item}'.")
        extra[key.strip().lstrip("-").replace("-", "_")] = value.strip()
    for flag in ("slurm_gpus_per_job", "slurm_cpus_per_gpu", "slurm_parallel"):
        value = getattr(args, flag)
        if value is not None and value < (0 if flag == "slurm_gpus_per_job" else 1):
            raise BenchError(f"--{flag.replace('_', '-')} must be a positive integer, got {value}.")
    if args.slurm_gpus_per_job is not None:
        gpus = args.slurm_gpus_per_job
    else:
        gpus = 0 if args.device == "cpu" else args.gpus
    procs = max(args.slurm_gpus_per_job or args.gpus, 1)  # processes per job (runtime_from sets --gpus to match)
    cpus = _slurm_cpus_per_process(args) * procs
    minutes = parse_slurm_time(args.slurm_time)
    describe = f"{gpus} GPU(s), {cpus} CPU(s), {procs} process(es) each, {minutes} min"
    if args.slurm_partition:
        describe += f", partition {args.slurm_partition}"
    return {"partition": args.slurm_partition, "time_min": minutes, "gpus": gpus, "cpus": cpus,
            "mem": args.slurm_mem, "account": args.slurm_account, "qos": args.slurm_qos, "extra": extra,
            "parallel": args.slurm_parallel, "shared": args.slurm_shared, "wait": args.wait,
            "describe": describe, "status_args": _status_args(args)}


def _status_args(args) -> str:
    """The selection part of the command, for the `bench status` hint."""
    import shlex

    out = []
    for flag in ("suite", "folder", "tasks", "model", "pretrained", "seeds", "config", "experiment"):
        if getattr(args, flag, None):
            out += [f"--{flag}", str(getattr(args, flag))]
    methods = getattr(args, "methods", None) or getattr(args, "method", None)
    out += ["--methods", methods] if methods else []
    for item in getattr(args, "sets", []):
        out += ["--set", item]
    return " " + shlex.join(out) if out else ""


def apply_suite_resources(args, opts, jobs, suite_resources: dict | None) -> None:
    """Under Ray without --resources, each trial gets the suite's `resources` (and loader workers to match)."""
    if args.executor == "ray" and args.resources is None and suite_resources:
        opts.resources = {k: float(v) for k, v in suite_resources.items()}
        for job in jobs:
            job.runtime = runtime_from(args, opts.resources)


def cmd_sweep(args) -> int:
    import os

    from bench.launch.launcher import check_options, launch
    from bench.jobs.state import counts, format_table, job_states
    from .sweep import build_sweep

    if args.data_root:
        os.environ["BENCH_DATA"] = args.data_root
    opts = launch_options(args)
    check_options(opts)
    sweeps = build_sweep(args.method, task=args.tasks, suite=args.suite, folder=args.folder, space=args.space,
                         num_samples=args.num_samples, space_seed=args.space_seed, seeds=args.seeds, model=args.model,
                         pretrained=args.pretrained, sets=args.sets, config=args.config, experiment=args.experiment,
                         runtime=runtime_from(args, opts.resources))
    failed = 0
    for sw in sweeps:
        if args.metric:
            sw.metric = args.metric
            sw.mode = args.mode or ("min" if "loss" in args.metric else "max")
        elif args.mode:
            raise BenchError("--mode goes with --metric.")
        apply_suite_resources(args, opts, sw.jobs, sw.resources)
        states = job_states(sw.jobs)
        print(f"sweep {sw.key}: {sw.method} on {sw.suite}/{sw.task}, {len(sw.points)} point(s) x "
              f"{len(sw.jobs) // max(len(sw.points), 1)} seed(s) = {len(sw.jobs)} job(s) ({counts(states)}); "
              f"space {sw.space_source}; selection metric {sw.metric} ({sw.mode})")
        print(format_table(sw.jobs, states, extra=sw.hparam_idx))
        if args.dry_run:
            continue
        try:
            outcome = launch(sw.jobs, opts, sweep=sw)
        except SystemExit as exc:
            if type(exc).__name__ != "Submitted" or sw is sweeps[-1]:
                raise
            continue  # --executor slurm without --wait: submitted; the next task's sweep
        failed += len(outcome.failed)
        if outcome.parent_run_id is None and args.executor == "slurm" and set(outcome.states) == {"done"}:
            outcome.parent_run_id = _close_submitted_parent(sw)
        print(_result_table(sw, outcome))
        if outcome.parent_run_id:
            _record_best(sw, outcome.parent_run_id)
        failed += len(sweep_soups(sw, outcome.parent_run_id, alphas=_alphas(sw) if args.wise_ft else None))
    if failed:
        print(f"bench: {failed} trial(s) failed (MLflow: FAILED); rerun the same command to resume them from their "
              "last checkpoint, or `bench clean --incomplete` to drop them.", file=sys.stderr)
        return 1
    return 0


def sweep_soups(sw, parent_run_id: str | None, alphas=None) -> list[str]:
    """The uniform and greedy soups of the sweep's finished points (per seed, K >= 2), nested under its parent
    run (found by the sweep's key when this launch started nothing); returns the run_keys that failed."""
    from bench.launch.launcher import run_soups, tracker_factory
    from bench.tracking.runs import MlflowTracker
    from bench.tracking.store import tracking_uri

    parent = parent_run_id or MlflowTracker(sw.experiment).find_parent(sw.key)
    return run_soups(sw.jobs, tracker_factory(tracking_uri()), parent, alphas)


def _alphas(sw) -> list[float]:
    from bench.spec.suites import DEFAULT_ALPHAS, load_suite

    if sw.suite == "folder":
        return list(DEFAULT_ALPHAS)
    return list(load_suite(sw.suite).get("wiseft", {}).get("alphas", DEFAULT_ALPHAS))


def _close_submitted_parent(sw) -> str | None:
    """A sweep submitted to SLURM without --wait left its parent run KILLED; once every job is done, the next
    `bench sweep` (or --wait) finds nothing to launch and ends the parent FINISHED, with the best point."""
    from bench.tracking.runs import MlflowTracker

    tracker = MlflowTracker(sw.experiment)
    parent = tracker.find_parent(sw.key)
    if parent and tracker.client.get_run(parent).info.status != "FINISHED":
        tracker.set_status(parent, "FINISHED")
    return parent


def _record_best(sw, parent_run_id: str) -> None:
    """The best trial's metrics and hyperparameters on the parent run, where MLflow's table shows them."""
    from bench.tracking.runs import MlflowTracker

    best = MlflowTracker(sw.experiment).record_best(parent_run_id, sw.metric, sw.mode)
    if best:
        hp = ", ".join(f"{k[len('best.hp.'):]}={v}" for k, v in best["tags"].items() if k.startswith("best.hp."))
        print(f"best point h{best['tags']['bench.best_hparam_idx']} (sel/{sw.metric}="
              f"{best['metrics'][f'sel/{sw.metric}']:.4f}): {hp}; recorded on parent run {parent_run_id}")


def _result_table(sw, outcome) -> str:
    import json

    from bench.jobs.state import counts, format_table

    lines = [f"sweep {sw.key} ({sw.method}/{sw.task}): launched {len(outcome.launched)} in {outcome.seconds:.1f}s; "
             f"now {counts(outcome.states)}" + (f"; parent run {outcome.parent_run_id}" if outcome.parent_run_id else "")]
    table = format_table(sw.jobs, outcome.states, extra=sw.hparam_idx).splitlines()
    for line, job in zip(table, sw.jobs):
        done = job.run_dir / "done.json"
        value = json.loads(done.read_text()).get(f"sel/{sw.metric}") if done.is_file() else None
        lines.append(line + (f"  sel/{sw.metric}={value:.4f}" if isinstance(value, (int, float)) else ""))
    return "\n".join(lines)


def cmd_status(args) -> int:
    import os

    from bench.jobs.plan import plan_from_args

    from bench.jobs.state import counts, format_table, job_states, unfinished_everywhere
    from .sweep import saved_sweeps

    if args.data_root:
        os.environ["BENCH_DATA"] = args.data_root
    plan = plan_from_args(args, check_data=False)
    states = job_states(plan.jobs)
    print(f"suite {plan.suite} (experiment '{plan.experiment}'): `bench run` jobs: {counts(states)}")
    for task in plan.tasks:
        for method in plan.methods:
            sub = [s for j, s in zip(plan.jobs, states) if j.task == task and j.method == method]
            if sub:
                print(f"  {task:<16} {method:<9} {counts(sub)}")
    if args.jobs:
        print(format_table(plan.jobs, states))
    listed = {j.run_key for j in plan.jobs}
    sweeps = saved_sweeps(suite=plan.suite, experiment=plan.experiment)
    if sweeps:
        print(f"sweeps ({len(sweeps)}):")
    for sw in sweeps:
        sw_states = job_states(sw["jobs"])
        listed |= {j.run_key for j in sw["jobs"]}
        print(f"  {sw['key']}  {sw['task']:<16} {sw['method']:<9} {len(sw['jobs'])} job(s): {counts(sw_states)}")
        if args.jobs:
            print(format_table(sw["jobs"], sw_states, extra=sw["hparam_idx"]))
    _slurm_status(plan.jobs + [j for sw in sweeps for j in sw["jobs"]])
    others = [e for e in unfinished_everywhere(include_stopped=False) if e["run_key"] not in listed]
    if others:
        print(f"elsewhere in this BENCH_HOME: {len(others)} unfinished job(s) of other runs "
              "(`bench clean --incomplete` lists and deletes them)")
    return 0


def _slurm_status(jobs) -> None:
    """SLURM's state beside the job's, for jobs submitted with --executor slurm (imports submitit only then)."""
    jobs = list({j.run_key: j for j in jobs}.values())
    if not any((j.run_dir / "slurm.json").is_file() for j in jobs):
        return
    from bench.jobs.state import job_states
    from .slurm_executor import status_lines

    for line in status_lines(jobs, job_states(jobs)):
        print(line)


def cmd_clean(args) -> int:
    from bench.jobs.state import describe, remove, unfinished_everywhere

    if not args.incomplete:
        raise BenchError("Nothing to clean: pass --incomplete (and --stopped to include jobs ASHA stopped early).")
    entries = unfinished_everywhere(include_stopped=args.stopped)
    if not entries:
        print("No unfinished jobs.")
        return 0
    print(f"{len(entries)} unfinished job(s) to delete (job directories with their checkpoints; MLflow runs go to "
          "its trash, `mlflow gc` purges them):")
    print("\n".join(describe(e) for e in entries))
    if not args.yes:
        if not sys.stdin.isatty():
            raise BenchError("Refusing to delete without confirmation: pass --yes.")
        if input("Delete them? [y/N] ").strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return 1
    remove(entries)
    print(f"Deleted {len(entries)} job(s).")
    return 0
