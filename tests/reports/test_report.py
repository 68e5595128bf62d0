"""`bench report` on a real MLflow SQLite store filled with fixed runs (logged with MlflowClient, the way
bench.train.engine logs them): golden Markdown/LaTeX/CSV, selection on ID validation vs oracle, plots, errors.

Regenerate the golden files after an intended change with: BENCH_UPDATE_GOLDEN=1 pytest tests/reports/test_report.py
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from bench.errors import BenchError

GOLDEN = Path(__file__).parent / "golden"
SHIFT_SETS = ["v2", "sketch", "rendition", "adversarial"]   # suite order, deliberately not alphabetical
SHIFT_OFFSET = {"v2": 0.08, "sketch": -0.05, "rendition": 0.02, "adversarial": -0.10}
# Per method: (ID level, OOD level). Epoch shapes: ID validation peaks at epoch 2, OOD at epoch 1, so
# ID-validation and oracle selection must choose different epochs.
LEVEL = {"zeroshot": (0.60, 0.50), "lp": (0.70, 0.45), "ft": (0.80, 0.46), "l2sp": (0.79, 0.47),
         "lpft": (0.81, 0.49), "flyp": (0.83, 0.52), "flyp-ce": (0.80, 0.50)}
VAL_SHAPE = {1: -0.02, 2: 0.0, 3: -0.01}
OOD_SHAPE = {1: 0.01, 2: 0.0, 3: -0.02}
# FT sweep: lr=3e-05 is best on ID validation, lr=1e-05 on OOD (oracle picks it).
FT_CONFIGS = {"1e-05": (0.0, 0.03), "3e-05": (0.01, -0.01)}


class Store:
    """Logs bench-shaped runs into one experiment; end times are fixed so 'newest run' is deterministic."""

    def __init__(self, experiment: str, home: Path):
        from mlflow.tracking import MlflowClient

        from bench.tracking.store import tracking_uri

        self.client = MlflowClient(tracking_uri=tracking_uri())
        art = home / "artifacts" / experiment
        art.mkdir(parents=True, exist_ok=True)
        self.exp = self.client.create_experiment(experiment, artifact_location=art.resolve().as_uri())
        self.clock = 1_700_000_000_000

    def log(self, *, method, task, seed, points, hp=None, kind="job", base=None, alpha=None, run_key=None,
            arch="toy-clip", pretrained="default", status="FINISHED", spec=None, suite="toy", tags=True,
            jsonl=True):
        """points: {epoch: metrics}; sel/* is the first epoch with the best val metric (as bench.train.selection)."""
        from mlflow.entities import Metric, Param

        hp = hp or {}
        key = run_key or (f"{base['run_key']}+wiseft-a{alpha}" if base else
                          "-".join(([arch] if arch != "toy-clip" else []) + [method, task, f"s{seed}"] + [f"{k}{v}" for k, v in sorted(hp.items())]))
        tag = {"bench.run_key": key, "bench.method": method, "bench.task": task, "bench.seed": str(seed),
               "bench.model": arch, "bench.suite": suite, "bench.kind": kind, "bench.git_sha": "test"}
        params = {**{f"hp.{k}": str(v) for k, v in hp.items()}, "task": task, "method": method, "seed": str(seed),
                  "model.arch": arch, "model.pretrained": str(pretrained), "suite": suite}
        if base:
            tag.update({"bench.base_method": base["method"], "bench.base_run_key": base["run_key"], "bench.alpha": str(alpha)})
            params.update({"extra.alpha": str(alpha), "extra.base_method": base["method"], "extra.base_run_key": base["run_key"]})
        run = self.client.create_run(self.exp, tags=tag if tags else {})
        rid = run.info.run_id
        val_key = next((k for k in points[min(points)] if k.startswith("val/")), None)
        best = min(points, key=lambda e: (-points[e].get(val_key, 0.0), e))
        sel = {"sel/epoch": best, **{f"sel/{k}": v for k, v in points[best].items()}}
        metrics = [Metric(k, v, 0, e) for e, m in points.items() for k, v in m.items()]
        if kind == "wiseft":
            metrics += [Metric(k, v, 0, 0) for k, v in sel.items()]
        else:
            metrics += [Metric(k, v, 0, len(points)) for k, v in {**sel, "sel/epochs_run": len(points)}.items()]
        self.client.log_batch(rid, metrics=metrics, params=[Param(k, v) for k, v in params.items()])
        if kind == "job":
            if spec:
                import yaml

                self.client.log_text(rid, yaml.safe_dump({"job": {"task_spec": spec}}), "config.yaml")
            if jsonl:
                self.client.log_text(rid, "\n".join(json.dumps({"epoch": e, **m}, sort_keys=True) for e, m in points.items()),
                                     "metrics.jsonl")
        self.clock += 1000
        self.client.set_terminated(rid, status=status, end_time=self.clock)
        return {"run_key": key, "method": method, "sel": points[best]}


def shift_point(id_level, ood_level, drop_sets=()):
    m = {"val/top1": round(id_level - 0.01, 4), "id/id_test/top1": round(id_level, 4)}
    values = {s: round(ood_level + SHIFT_OFFSET[s], 4) for s in SHIFT_SETS if s not in drop_sets}
    m.update({f"ood/{s}/top1": v for s, v in values.items()})
    m["ood/avg"] = sum(values.values()) / len(values)
    return m


def cameras_point(id_level, ood_level):
    return {"val/macro_f1": round(id_level - 0.02, 4), "id/id_test/macro_f1": round(id_level, 4),
            "ood/ood_test/macro_f1": round(ood_level - 0.1, 4), "ood/avg": round(ood_level - 0.1, 4)}


TASKS = {
    "toy-shift": (shift_point, {"id": [{"name": "id_test"}], "ood": [{"name": s} for s in SHIFT_SETS]}),
    "toy-cameras": (cameras_point, {"id": [{"name": "id_test"}], "ood": [{"name": "ood_test"}]}),
}


def epochs(point_fn, id_level, ood_level, trains=True, **kw):
    if not trains:
        return {0: point_fn(id_level, ood_level, **kw)}
    out = {}
    for e in (1, 2, 3):
        p = point_fn(id_level + VAL_SHAPE[e], ood_level + OOD_SHAPE[e], **kw)
        out[e] = p
    return out


def mix(a: dict, b: dict, alpha: float) -> dict:
    """A WiSE-FT point between the zero-shot (a) and finetuned (b) metrics: at alpha 0.5 slightly above the
    finetuned model on ID (so ID validation picks it) and well above both on OOD, as in the WiSE-FT paper."""
    if alpha in (0.0, 1.0):
        return dict(a if alpha == 0.0 else b)
    out = {k: round(b[k] + 0.005 if k.startswith(("val/", "id/")) else max(a[k], b[k]) + 0.03, 4)
           for k in b if k in a and k != "ood/avg"}
    sets = [v for k, v in out.items() if k.startswith("ood/")]
    out["ood/avg"] = sum(sets) / len(sets)
    return out


def fill_golden(store: Store) -> None:
    for task, (fn, spec) in TASKS.items():
        zs = {}
        for seed in (0, 1):
            if task == "toy-cameras" and seed == 0:  # an earlier finished duplicate of the same job: ignored
                store.log(method="zeroshot", task=task, seed=0, points={0: fn(0.1, 0.1)}, spec=spec)
            zs[seed] = store.log(method="zeroshot", task=task, seed=seed, spec=spec,
                                 points={0: fn(0.60 + 0.004 * seed, 0.50 - 0.002 * seed)})["sel"]
        for method, (idl, oodl) in LEVEL.items():
            if method == "zeroshot" or (method == "flyp-ce" and task == "toy-cameras"):
                continue
            seeds = (0,) if method == "l2sp" and task == "toy-shift" else (0, 1)
            configs = FT_CONFIGS if method == "ft" else {"1e-05": (0.0, 0.0)}
            for seed in seeds:
                for lr, (dv, do) in configs.items():
                    kw = {"drop_sets": ("adversarial",)} if method == "l2sp" and task == "toy-shift" else {}
                    pts = epochs(fn, idl + dv + 0.01 * seed, oodl + do - 0.004 * seed, **kw)
                    base = store.log(method=method, task=task, seed=seed, hp={"lr": lr, "wd": 0.1}, points=pts, spec=spec)
                    if method in ("ft", "flyp"):
                        for alpha in (0.0, 0.5, 1.0):
                            store.log(method="wiseft", task=task, seed=seed, kind="wiseft", base=base, alpha=alpha,
                                      points={0: mix(zs[seed], base["sel"], alpha)})
        store.log(method="flyp", task=task, seed=2, hp={"lr": "1e-05", "wd": 0.1}, status="FAILED",
                  points=epochs(fn, 0.1, 0.1))
    store.log(method="x", task="x", seed=0, points={0: {"val/top1": 0.5}}, tags=False)  # a foreign run


def _fast_dir(tmp_path_factory) -> Path:
    """SQLite commits cost an fsync each (about 25 ms on disk, nothing on tmpfs): stores that tests fill go
    to /dev/shm when it exists, which makes logging some 70 runs take about a second instead of seven."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(dir=shm, prefix="bench-report-"))
    return tmp_path_factory.mktemp("report")


@contextlib.contextmanager
def _home(tmp_path_factory, template):
    root = _fast_dir(tmp_path_factory)
    home = root / "home"
    home.mkdir()
    shutil.copy(template, home / "mlflow.db")
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("BENCH_HOME", str(home))
            mp.delenv("MLFLOW_TRACKING_URI", raising=False)
            yield home
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def template(tmp_path_factory, request):
    """A migrated empty store on tmpfs (migrating costs seconds on disk); conftest's one elsewhere."""
    root = _fast_dir(tmp_path_factory)
    if not str(root).startswith("/dev/shm"):
        yield request.getfixturevalue("mlflow_template")
        return
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=f"sqlite:///{root / 'template.db'}").search_experiments()
    yield root / "template.db"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def golden_home(tmp_path_factory, template):
    """One store for the module; tests only read it."""
    with _home(tmp_path_factory, template) as home:
        fill_golden(Store("toy", home))
        yield home


def use_home(home, monkeypatch):
    """Point bench at a prepared store (the default SQLite one, never a server from the environment)."""
    monkeypatch.setenv("BENCH_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


@pytest.fixture
def golden_env(golden_home, monkeypatch):
    return use_home(golden_home, monkeypatch)


@pytest.fixture
def home(tmp_path_factory, template):
    """A fresh store per test (like conftest's bench_home, on tmpfs where available)."""
    with _home(tmp_path_factory, template) as path:
        yield path


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("BENCH_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden file {path}; run with BENCH_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from {path} (BENCH_UPDATE_GOLDEN=1 to accept)"


# ---- golden outputs -----------------------------------------------------------------------------------------

def test_golden_markdown_latex_csv(golden_env, tmp_path):
    from bench.reports.api import write_report

    out = tmp_path / "out"
    md = write_report("toy", None, out, reference=GOLDEN / "reference.csv", layout="tasks")
    assert md == (out / "report.md").read_text(encoding="utf-8")
    for name in ("report.md", "report.tex", "results_long.csv", "results_wide.csv", "selection.csv", "wiseft_curves.csv"):
        check_golden(name, (out / name).read_text(encoding="utf-8"))
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count("<svg") == 4 and html.count("<table>") == 2 and "<script" not in html and 'src="' not in html
    assert "Ignored 1 run(s) without bench tags" in md


def test_golden_oracle(golden_env):
    from bench.reports.api import build_report

    report = build_report("toy", None, formats=("md", "csv"), selection="oracle", plots=False, layout="tasks")
    check_golden("report_oracle.md", report.markdown)
    check_golden("selection_oracle.csv", report.files["selection.csv"].decode())
    assert report.markdown.count("ORACLE selection") >= 1 + len(report.tables)  # intro + every caption


# ---- selection ----------------------------------------------------------------------------------------------

def _picks(report, task="toy-shift"):
    p = report.selected.picks
    return {(r.row, r.seed): r for r in p[p["task"] == task].itertuples(index=False)}


def test_id_validation_picks_the_validation_best_point_and_oracle_differs(golden_env):
    from bench.reports.api import build_report

    idv = _picks(build_report("toy", None, formats=("md",), plots=False))
    ora = _picks(build_report("toy", None, formats=("md",), selection="oracle", plots=False))
    # hparams: lr=3e-05 wins on ID validation, lr=1e-05 on OOD
    assert idv[("ft", 0)].hparams == "lr=3e-05, wd=0.1" and idv[("ft", 0)].candidates == 2
    assert ora[("ft", 0)].hparams == "lr=1e-05, wd=0.1"
    # epoch: validation peaks at 2, OOD at 1
    assert idv[("flyp", 1)].epoch == 2 and ora[("flyp", 1)].epoch == 1
    # WiSE-FT: alpha on ID validation, among the interpolations of the FT run chosen for that seed, alpha 0
    # (the zero-shot model) excepted
    assert idv[("ft+wiseft", 0)].alpha == 0.5 and idv[("ft+wiseft", 0)].candidates == 2
    assert idv[("ft+wiseft", 0)].run_key.startswith(idv[("ft", 0)].run_key)
    assert ora[("ft+wiseft", 0)].run_key.startswith(ora[("ft", 0)].run_key)
    # the FAILED seed-2 run and the foreign run never enter; the duplicated job counts once, newest kept
    assert ("flyp", 2) not in idv
    zs = _picks(build_report("toy", None, formats=("md",), plots=False), "toy-cameras")[("zeroshot", 0)]
    assert zs.score > 0.5


def test_selection_classes_on_hand_built_records():
    import pandas as pd

    from bench.reports.select import IDValidation, Oracle, select

    def run(key, epoch_best, **sel):
        return {"run_id": key, "run_key": key, "model": "m", "task": "t", "method": "ft", "seed": 0, "kind": "job",
                "base_method": None, "base_run_key": None, "alpha": None, "hparams": key,
                "sel/epoch": epoch_best, **{f"sel/{k}": v for k, v in sel.items()}}

    runs = pd.DataFrame([run("a", 1, **{"val/top1": 0.7, "ood/avg": 0.5}), run("b", 2, **{"val/top1": 0.8, "ood/avg": 0.4})])
    history = pd.DataFrame([("a", 1, "val/top1", 0.7), ("a", 1, "ood/avg", 0.5), ("a", 2, "ood/avg", 0.6),
                            ("b", 2, "val/top1", 0.8), ("b", 2, "ood/avg", 0.4)],
                           columns=["run_id", "epoch", "key", "value"])
    assert select(runs, IDValidation()).picks.iloc[0]["run_key"] == "b"
    pick = select(runs, Oracle(), history).picks.iloc[0]
    assert (pick["run_key"], pick["epoch"], pick["score"]) == ("a", 2, 0.6)


def test_oracle_reads_the_metric_history_when_metrics_jsonl_is_missing(home):
    from bench.reports.api import build_report

    Store("toy", home).log(method="ft", task="toy-cameras", seed=0, points=epochs(cameras_point, 0.8, 0.5), jsonl=False)
    pick = lambda rule: build_report("toy", None, formats=("md",), selection=rule, plots=False).selected.picks.iloc[0]
    assert pick("id_val")["epoch"] == 2 and pick("oracle")["epoch"] == 1


# ---- plots and HTML -----------------------------------------------------------------------------------------

def test_plots_carry_one_series_per_method_and_the_wiseft_curves(golden_env, tmp_path):
    from bench.reports.api import build_report

    report = build_report("toy", None, formats=("html",))
    fig = report.figures[("toy-clip (default)", "toy-shift", "id_ood")]
    ax = fig.axes[0]
    points = [c.get_label() for c in ax.collections]
    assert points == ["Zeroshot", "LP", "FT", "L2-SP", "LP-FT", "FLYP", "FLYP-CE", "FT + WiSE-FT", "FLYP + WiSE-FT"]
    curves = {line.get_label(): len(line.get_xdata()) for line in ax.lines}
    assert curves == {"FT + WiSE-FT curve (α 0–1)": 3, "FLYP + WiSE-FT curve (α 0–1)": 3,
                      "Baseline fit (Zeroshot, LP, FT; probit)": 41}
    # the curve runs from the zero-shot point (alpha 0) to the FT point (alpha 1)
    ft_curve = next(l for l in ax.lines if l.get_label().startswith("FT "))
    zs = ax.collections[0].get_offsets()[0]
    assert tuple(ft_curve.get_xydata()[0]) == pytest.approx(tuple(zs))
    bars = report.figures[("toy-clip (default)", "toy-shift", "vs_ft")].axes[0]
    assert [c.get_label() for c in bars.containers] == ["Zeroshot", "LP", "L2-SP", "LP-FT", "FLYP", "FLYP-CE",
                                                        "FT + WiSE-FT", "FLYP + WiSE-FT"]
    assert len(bars.containers[0]) == 5  # four OOD sets and their average
    for rel, data in report.files.items():
        if rel.startswith("plots/"):
            assert data.startswith(b"\x89PNG") if rel.endswith(".png") else b"<svg" in data[:400]
    assert sorted(r for r in report.files if r.startswith("plots/")) == sorted(
        f"plots/toy-clip-default__{t}__{k}.{e}" for t in ("toy-shift", "toy-cameras") for k in ("id_ood", "vs_ft")
        for e in ("png", "svg"))


# ---- CLI ----------------------------------------------------------------------------------------------------

def test_cli_subcommand_writes_the_requested_formats(golden_env, tmp_path, capsys):
    from bench.reports.cli import add_parser, run

    parser = argparse.ArgumentParser(prog="bench")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", "--suite", "toy", "--format", "md,csv", "--out", str(tmp_path / "r"), "--no-plots"])
    assert run(args) == 0
    assert "| Method | Toy-shift ID | Toy-shift Avg (4) |" in capsys.readouterr().out  # toy: the paper layout
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "report.md", "results_long.csv", "results_paper.csv", "results_wide.csv", "selection.csv", "wiseft_curves.csv"]
    args = parser.parse_args(["report", "--suite", "toy", "--format", "md", "--out", str(tmp_path / "t"), "--no-plots",
                              "--layout", "tasks"])
    assert run(args) == 0
    assert "### toy-shift" in capsys.readouterr().out


# ---- mixed models and bad input ------------------------------------------------------------------------------

def small_store(home, experiment="toy", archs=("toy-clip",), drop=None):
    store = Store(experiment, home)
    for arch in archs:
        for method in ("zeroshot", "ft"):
            pts = epochs(cameras_point, *LEVEL[method], trains=method != "zeroshot")
            if drop:
                pts = {e: {k: v for k, v in m.items() if not k.startswith(drop)} for e, m in pts.items()}
            store.log(method=method, task="toy-cameras", seed=0, arch=arch, points=pts, hp={"lr": 1})
    return store


def test_mixed_models_get_one_table_each(home):
    from bench.reports.api import build_report

    small_store(home, archs=("toy-clip", "bench-tiny"))
    report = build_report("toy", None, formats=("md",), plots=False)
    assert [(t.model, t.task) for t in report.tables] == [("bench-tiny (default)", "toy-cameras"),
                                                          ("toy-clip (default)", "toy-cameras")]
    assert "holds runs of 2 models" in report.markdown and report.markdown.count("## Model:") == 2
    only = build_report("toy", None, formats=("md",), plots=False, model="bench-tiny")
    assert [t.model for t in only.tables] == ["bench-tiny (default)"]
    with pytest.raises(BenchError, match="No runs of model 'vit' in this experiment. Models: bench-tiny"):
        build_report("toy", None, plots=False, model="vit")


BAD_REFERENCES = {
    "method,task,value\nft,toy-cameras,1\n": "missing column\\(s\\) dataset, metric",
    "method,task,dataset,metric,value\nft,toy-cameras,ood_test,macro_f1,abc\n": "line 2: value 'abc' is not a number",
    "method,task,dataset,metric,value\nfyp,toy-cameras,ood_test,macro_f1,1\n": "unknown method 'fyp'. Did you mean 'flyp'",
    "method,task,dataset,metric,value\nft,toy-cameras,ood_tset,macro_f1,1\n": "has no evaluation set 'ood_tset'",
    "method,task,dataset,metric,value\nft,toy-cameras,ood_test,top1,1\n": "measured in macro_f1, not 'top1'",
    "method,task,dataset,metric,value\nft,t,avg,top1,1\nFT,t,avg,top1,2\n": "line 3: repeats line 2",
    "method,task,dataset,metric,value\n": "has a header but no rows",
}


@pytest.mark.parametrize("case", [
    "no store", "no experiment", "only failed runs", "missing validation metric", "oracle without ood",
    "unknown format", "unknown selection", *[f"reference {i}" for i in range(len(BAD_REFERENCES))]])
def test_bad_input_gives_one_clear_error_and_writes_nothing(home, tmp_path, case):
    from bench.reports.api import write_report

    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("previous report\n")
    kwargs, expected = {}, None
    if case == "no store":
        (home / "mlflow.db").unlink()
        expected = "No MLflow store at"
    elif case == "no experiment":
        small_store(home, experiment="toys")
        expected = "No MLflow experiment 'toy'.* Did you mean 'toys'"
    elif case == "only failed runs":
        Store("toy", home).log(method="ft", task="t", seed=0, status="FAILED", points={1: cameras_point(.5, .5)})
        expected = "No FINISHED bench runs in experiment 'toy'; found only 1 FAILED"
    elif case == "missing validation metric":
        small_store(home, drop="val/")
        expected = "has no ID-validation metric"
    elif case == "oracle without ood":
        small_store(home, drop="ood/")
        kwargs, expected = {"selection": "oracle"}, "has no 'ood/avg', which oracle selection needs"
    elif case == "unknown format":
        small_store(home)
        kwargs, expected = {"formats": "md,pdf"}, "Unknown report format 'pdf'"
    elif case == "unknown selection":
        small_store(home)
        kwargs, expected = {"selection": "best"}, "Unknown selection 'best'"
    else:
        small_store(home)
        text, expected = list(BAD_REFERENCES.items())[int(case.split()[1])]
        (tmp_path / "ref.csv").write_text(text)
        kwargs = {"reference": tmp_path / "ref.csv"}
    with pytest.raises(BenchError, match=expected):
        write_report("toy", None, out, plots=False, **kwargs)
    assert sorted(p.name for p in out.iterdir()) == ["report.md"]
    assert (out / "report.md").read_text() == "previous report\n"
