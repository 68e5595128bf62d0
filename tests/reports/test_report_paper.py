"""`bench report --layout paper` on fixed MLflow stores shaped like the three paper suites: golden Markdown,
LaTeX, CSV and HTML for Table 1 (with the 7-set OOD average and the weight-ensembling block), the per-shift
detail, the transfer table and the few-shot table with 95% intervals; published deltas; alpha 0 never a
WiSE-FT row.

Regenerate the golden files after an intended change with: BENCH_UPDATE_GOLDEN=1 pytest tests/reports/test_report_paper.py
"""
from __future__ import annotations

import pytest

from test_report import GOLDEN, Store, _home, check_golden, use_home  # noqa: F401  (template fixture below)
from test_report import template  # noqa: F401

IN_SHIFTS = ["imagenetv2", "imagenet-r", "imagenet-a", "imagenet-sketch", "objectnet"]  # suite order
SHIFT_TASKS = {
    "imagenet": ({"id": [{"name": "imagenet"}], "ood": [{"name": s} for s in IN_SHIFTS]}, "top1",
                 [("id", "imagenet", "top1")] + [("ood", s, "top1") for s in IN_SHIFTS]),
    "iwildcam": ({"id": [{"name": "iwildcam-id"}], "ood": [{"name": "iwildcam-ood"}]}, "macro_f1",
                 [("id", "iwildcam-id", "F1-macro_all"), ("ood", "iwildcam-ood", "F1-macro_all")]),
    "fmow": ({"id": [{"name": "fmow-id"}], "ood": [{"name": "fmow-ood"}]}, "top1",
             [("id", "fmow-id", "acc_avg"), ("ood", "fmow-ood", "acc_worst_region")]),
}
# Per method: (ID level, OOD level), on the scale of Table 1.
LEVEL = {"zeroshot": (0.68, 0.58), "lp": (0.79, 0.57), "ft": (0.81, 0.54), "l2sp": (0.815, 0.56),
         "lpft": (0.817, 0.60), "flyp": (0.826, 0.605)}
FINETUNERS = ("ft", "l2sp", "lpft", "flyp")


def point(sets, val_metric, idl, oodl):
    m = {f"val/{val_metric}": round(idl - 0.01, 4)}
    for i, (role, name, metric) in enumerate(sets):
        m[f"{role}/{name}/{metric}"] = round((idl if role == "id" else oodl) - 0.013 * i, 4)
    oods = [v for k, v in m.items() if k.startswith("ood/")]
    if oods:
        m["ood/avg"] = sum(oods) / len(oods)
    return m


def wise_point(zs, ft, alpha):
    """Alpha 0 is the zero-shot model, given the best validation score of all so that a rule allowed to pick it
    would; alpha 0.5 sits above both on ID and OOD."""
    if alpha == 0.0:
        return {**zs, **{k: 0.99 for k in zs if k.startswith("val/")}}
    if alpha == 1.0:
        return dict(ft)
    out = {k: round((ft[k] + 0.01) if k.startswith(("val/", "id/")) else max(zs[k], ft[k]) + 0.02, 4)
           for k in ft if k != "ood/avg"}
    oods = [v for k, v in out.items() if k.startswith("ood/")]
    if oods:
        out["ood/avg"] = sum(oods) / len(oods)
    return out


def fill_shift(store):
    for task, (spec, val_metric, sets) in SHIFT_TASKS.items():
        for seed in ((0, 1) if task == "iwildcam" else (0,)):  # the paper averages iWildCam over seeds
            zs = None
            for method, (idl, oodl) in LEVEL.items():
                p = point(sets, val_metric, idl + 0.01 * seed, oodl - 0.005 * seed)
                base = store.log(method=method, task=task, seed=seed, arch="ViT-B-16", pretrained="openai",
                                 hp={"lr": "1e-05"}, points={0: p}, spec=spec, suite="distribution-shift")
                zs = p if method == "zeroshot" else zs
                if method in FINETUNERS:
                    for alpha in (0.0, 0.5, 1.0):
                        store.log(method="wiseft", task=task, seed=seed, kind="wiseft", base=base, alpha=alpha,
                                  arch="ViT-B-16", pretrained="openai", points={0: wise_point(zs, p, alpha)},
                                  suite="distribution-shift")


def fill_transfer(store):
    for i, task in enumerate(("caltech101", "stanfordcars", "flowers102")):
        spec = {"id": [{"name": task}]}
        for method in ("zeroshot", "lp", "ft", "flyp"):
            idl = LEVEL[method][0] + 0.02 * i
            store.log(method=method, task=task, seed=0, arch="ViT-B-16", pretrained="openai", spec=spec,
                      suite="transfer", points={0: {"val/top1": idl - 0.01, f"id/{task}/top1": idl}})


def fill_few_shot(store):
    for data in ("sst2", "pcam"):
        for k in (4, 16, 32):
            task = f"{data}-{k}shot"
            for method in ("zeroshot", "lp", "ft", "flyp"):
                for seed in (0, 1, 2):  # three draws
                    if method == "zeroshot" and seed:
                        continue  # zero-shot does not depend on the draw: one run
                    idl = 0.55 + (0.0 if method == "zeroshot" else 0.002 * k + 0.01 * seed + 0.005 * len(method))
                    store.log(method=method, task=task, seed=seed, arch="ViT-B-16", pretrained="openai",
                              spec={"id": [{"name": data}]}, suite="few-shot",
                              points={0: {"val/top1": idl, f"id/{data}/top1": round(idl + 0.01, 4)}})


REFERENCE = """method,task,dataset,metric,value
FLYP,imagenet,imagenet,top1,82.6
FLYP,imagenet,avg,top1,60.2
FLYP,iwildcam,iwildcam-ood,F1-macro_all,35.0
FLYP,fmow,fmow-ood,acc_worst_region,46.0
"""


@pytest.fixture(scope="module")
def paper_home(tmp_path_factory, template):  # noqa: F811
    with _home(tmp_path_factory, template) as home:
        fill_shift(Store("distribution-shift", home))
        fill_transfer(Store("transfer", home))
        fill_few_shot(Store("few-shot", home))
        (home / "reference.csv").write_text(REFERENCE)
        yield home


@pytest.fixture
def paper_env(paper_home, monkeypatch):
    return use_home(paper_home, monkeypatch)


@pytest.mark.parametrize("suite", ["distribution-shift", "transfer", "few-shot"])
def test_golden_paper_layouts(paper_env, tmp_path, suite):
    from bench.reports.api import write_report

    out = tmp_path / "out"
    md = write_report(None, suite, out, plots=False)  # the paper layout is these suites' default
    for name, stem in (("report.md", "md"), ("report.tex", "tex"), ("results_paper.csv", "csv")):
        check_golden(f"paper_{suite}.{stem}", (out / name).read_text(encoding="utf-8"))
    page = (out / "report.html").read_text(encoding="utf-8")
    assert '<div class="wide"><table>' in page and ".wide { max-width: 100%; overflow-x: auto; }" in page
    assert md.startswith("# Results: experiment " + suite)


def test_table_one_shape_seven_set_average_and_weight_ensembling_block(paper_env):
    from bench.reports.api import build_report

    report = build_report(None, "distribution-shift", formats=("md",), plots=False)
    lines = report.markdown.splitlines()
    head = next(line for line in lines if line.startswith("| Method | ImageNet"))
    assert head == ("| Method | ImageNet ID | ImageNet Avg (5) | iWildCam ID | iWildCam OOD | FMoW ID | FMoW OOD "
                    "| Avg OOD (7) |")
    rows = [line.split(" | ")[0][2:] for line in lines[lines.index(head) + 2:] if line.startswith("| ")]
    assert rows[:10] == ["Zeroshot", "LP", "FT", "L2-SP", "LP-FT", "FLYP", "FT + WiSE-FT", "L2-SP + WiSE-FT",
                         "LP-FT + WiSE-FT", "FLYP + WiSE-FT"]
    # The 7-set average is the mean of the seven OOD cells (seed 0 holds all three tasks).
    from bench.reports.paper import build_paper_tables

    chosen = report.selected
    table = build_paper_tables(report.tables, chosen.points, "")[0]
    flyp = next(r for r in table.rows if r.id == "flyp")
    seven = [v for (t, k, v) in chosen.points[(chosen.points["row"] == "flyp") & (chosen.points["seed"] == 0)]
             [["task", "key", "value"]].itertuples(index=False) if k.startswith("ood/") and k != "ood/avg"]
    assert len(seven) == 7
    assert flyp.cells["all/ood/avg"].mean == pytest.approx(100 * sum(seven) / 7)
    assert "| Method | IN | V2 | R | A | Sketch | ObjectNet | Avg |" in lines  # the per-shift detail, suite order


def test_reference_deltas_on_the_paper_layout(paper_env):
    from bench.reports.api import build_report

    report = build_report(None, "distribution-shift", formats=("md", "latex"), plots=False,
                          reference=paper_env / "reference.csv")
    line = next(line for line in report.markdown.splitlines() if line.startswith("| FLYP (reference)"))
    cells = line.strip("| ").split(" | ")
    assert cells[1].startswith("82.6 (Δ ") and cells[2].startswith("60.2 (Δ ")
    assert cells[3] == "—" and cells[4].startswith("35.0 (Δ ")
    assert "FLYP (reference)" in report.files["report.tex"].decode()


def test_wiseft_rows_never_report_the_zero_shot_endpoint(paper_env):
    from bench.reports.api import build_report

    picks = build_report(None, "distribution-shift", formats=("md",), plots=False).selected.picks
    wise = picks[picks["row"].str.endswith("+wiseft")]
    assert len(wise) == 4 * 4 and set(wise["alpha"]) == {0.5}  # alpha 0 scores best on validation, yet never wins


def test_layout_option_and_errors(paper_env):
    from bench.errors import BenchError
    from bench.reports.api import build_report

    tasks = build_report(None, "transfer", formats=("md",), plots=False, layout="tasks")
    assert "### caltech101" in tasks.markdown and "| Method | Caltech101 |" not in tasks.markdown
    with pytest.raises(BenchError, match="Did you mean 'paper'"):
        build_report(None, "transfer", formats=("md",), plots=False, layout="papr")


def test_few_shot_interval_is_a_t_interval_over_draws():
    from bench.reports.paper import t975

    # Table values (4.303, 2.010, 1.972): exact quantiles, not the nearest smaller df's (df=200 is not df=120's 1.980)
    assert t975(2) == pytest.approx(4.3027, abs=1e-4) and t975(49) == pytest.approx(2.0096, abs=1e-4)
    assert t975(200) == pytest.approx(1.9719, abs=1e-4) and t975(10**6) == pytest.approx(1.95996, abs=1e-4)


def test_effective_robustness_is_the_height_above_the_probit_baseline_fit():
    from bench.reports.layout import Cell, Column, Row, Table
    from bench.reports.robustness import effective_robustness, probit, unprobit

    cols = [Column("id/x/top1", "id", "x", "top1"), Column("ood/avg", "avg", "avg", "top1")]
    on_line = lambda idp: unprobit(0.5 * probit(idp) - 0.2)  # a line in probit space

    def row(rid, idp, oodp):
        return Row(rid, rid, "ours", 1, {"id/x/top1": Cell(idp), "ood/avg": Cell(oodp)})

    table = Table("m", "t", "val/top1", "", cols, [row("zeroshot", 60, on_line(60)), row("lp", 70, on_line(70)),
                                                   row("ft", 80, on_line(80)), row("flyp", 82, on_line(82) + 3.0)])
    er = effective_robustness(table)
    assert er["zeroshot"] == pytest.approx(0, abs=1e-9) and er["ft"] == pytest.approx(0, abs=1e-9)
    assert er["flyp"] == pytest.approx(3.0)
    table.rows = table.rows[:1] + table.rows[3:]  # one baseline point: no line, no column
    assert effective_robustness(table) == {}


def test_effective_robustness_table_and_probit_plot(paper_env):
    from bench.reports.api import build_report

    report = build_report(None, "distribution-shift", formats=("md",))
    assert "| Method | ImageNet | iWildCam | FMoW |" in report.markdown  # the effective-robustness table
    fig = report.figures[("ViT-B-16 (openai)", "imagenet", "id_ood")]
    ax = fig.axes[0]
    assert ax.get_xscale() == "function" and ax.get_yscale() == "function"
    fit = next(line for line in ax.lines if line.get_label().startswith("Baseline fit (Zeroshot, LP, FT"))
    assert len(fit.get_xdata()) == 41
    assert ax.get_title().startswith("distribution-shift: imagenet, ViT-B-16 (openai); selection: ID-validation")
    assert any(t.get_text() == "α=0.5" for t in ax.texts)
