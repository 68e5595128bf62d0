"""The report pipeline: MLflow -> tidy frame -> selection -> seeds aggregated -> tables and figures -> files.

`build_report` does everything in memory and checks every input first; `write_report` then writes each
file atomically. A bad reference file, an unknown format or a run missing its metrics therefore fails
before any output file is touched.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError

FORMATS = ("md", "latex", "csv", "html")


@dataclass
class Report:
    markdown: str
    tables: list
    files: dict[str, bytes]                               # relative path -> content
    figures: dict = field(default_factory=dict)           # (model, task, kind) -> matplotlib Figure
    selected: object = None


def parse_formats(formats) -> tuple[str, ...]:
    items = [f.strip().lower() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    if not items:
        raise BenchError(f"No output format given. Formats: {', '.join(FORMATS)}.")
    for item in items:
        if item not in FORMATS:
            close = difflib.get_close_matches(item, FORMATS, n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise BenchError(f"Unknown report format '{item}'.{hint} Formats: {', '.join(FORMATS)} "
                             "(comma-separated, e.g. --format md,csv).")
    return tuple(dict.fromkeys(items))


def _task_order(name: str | None) -> list[str]:
    """Tables follow the suite's task order when the suite ships with bench; else alphabetical."""
    if not name:
        return []
    try:
        from bench.spec.suites import load_suite

        return list(load_suite(name)["tasks"])
    except Exception:  # a custom or unknown suite: order is cosmetic
        return []


def parse_layout(layout: str | None, name: str | None) -> str:
    from bench.reports.paper import LAYOUTS, default_layout

    if layout is None:
        return default_layout(name)
    if layout not in LAYOUTS:
        close = difflib.get_close_matches(layout, LAYOUTS, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise BenchError(f"Unknown report layout '{layout}'.{hint} Layouts: {', '.join(LAYOUTS)}.")
    return layout


def build_report(experiment: str | None = None, suite: str | None = None, formats=FORMATS, selection: str = "id_val",
                 reference=None, *, model: str | None = None, plots: bool = True, layout: str | None = None) -> Report:
    """layout: 'paper' (the paper's table shapes; default for the paper suites and toy) or 'tasks' (one
    table per task with every set); None picks by the suite (else experiment) name."""
    from bench.reports.aggregate import aggregate, aggregate_curves, row_summary
    from bench.reports.layout import build_tables
    from bench.reports.query import load_history, load_runs
    from bench.reports.reference import load_reference
    from bench.reports.select import get_selection, select
    from bench.reports.tables import (file_slug, to_csv_curves, to_csv_long, to_csv_selection, to_csv_wide,
                                      to_latex, to_markdown)

    formats = parse_formats(formats)
    layout = parse_layout(layout, suite or experiment or "toy")
    rule = get_selection(selection)
    ref = load_reference(reference) if reference else None
    runset = load_runs(experiment, suite, model)
    history = load_history(runset) if rule.needs_history else None
    chosen = select(runset.runs, rule, history)
    cells = aggregate(chosen.points)
    curves = aggregate_curves(chosen.curves)
    tables = build_tables(chosen, cells, row_summary(chosen.picks), rule, runset.set_order,
                          _task_order(suite or runset.experiment), ref)

    intro = _intro(runset, suite, experiment, rule, tables, ref, reference, layout)
    paper = None
    if layout == "paper":
        from bench.reports.paper import build_paper_tables

        paper = build_paper_tables(tables, chosen.points, rule.caption("each task's validation metric"))
    files: dict[str, bytes] = {}
    figures, links, svgs = {}, {}, {}
    if plots:
        from bench.reports.plots import delta_figure, id_ood_figure, render

        for t in tables:
            where = f"{suite or runset.experiment}: {t.task}, {t.model}; selection: {rule.title}"
            for kind, fig, alt in (("id_ood", id_ood_figure(t, curves, f"{where}\nOOD vs ID (probit axes)"),
                                    "OOD vs ID on probit axes, WiSE-FT curves and the baseline fit"),
                                   ("vs_ft", delta_figure(t, f"{where}\nOOD change against FT"),
                                    "change against FT per OOD set")):
                if fig is None:
                    continue
                figures[(t.model, t.task, kind)] = fig
                stem = f"plots/{file_slug(t.model, t.task)}__{kind}"
                files[f"{stem}.png"] = render(fig, "png")
                svg = render(fig, "svg")
                files[f"{stem}.svg"] = svg
                links.setdefault((t.model, t.task), []).append((f"{t.task}: {alt}", f"{stem}.png"))
                svgs.setdefault((t.model, t.task), []).append((f"{t.task}: {alt}", svg.decode()))
    if paper is not None:
        from bench.reports import paper_render

        markdown = paper_render.to_markdown(paper, intro, links)
    else:
        markdown = to_markdown(tables, intro, links)
    if "md" in formats:
        files["report.md"] = markdown.encode()
    if "latex" in formats:
        files["report.tex"] = (paper_render.to_latex(paper, intro) if paper is not None else to_latex(tables, intro)).encode()
    if "csv" in formats:
        if paper is not None:
            files["results_paper.csv"] = paper_render.to_csv(paper, rule.name).encode()
        files["results_long.csv"] = to_csv_long(tables, rule.name).encode()
        files["results_wide.csv"] = to_csv_wide(tables, rule.name).encode()
        files["selection.csv"] = to_csv_selection(chosen.picks, rule.name).encode()
        files["wiseft_curves.csv"] = to_csv_curves(curves, rule.name).encode()
    if "html" in formats:
        from bench.reports.html import to_html

        files["report.html"] = to_html(tables, intro, svgs, oracle=rule.name == "oracle", paper=paper).encode()
    return Report(markdown, tables, files, figures, chosen)


def _intro(runset, suite, experiment, rule, tables, ref, reference, layout="tasks") -> list[str]:
    title = f"Results: experiment {runset.experiment}" + (f", suite {suite}" if suite and experiment else "")
    lines = [title + (" (ORACLE selection)" if rule.name == "oracle" else "")]
    if rule.name == "oracle":
        lines.append("**ORACLE selection: hyperparameters, epochs and WiSE-FT alphas were chosen on the OOD test sets. "
                     "These numbers are an optimistic upper bound, not a valid estimate of OOD performance.**")
    else:
        lines.append("Selection: hyperparameters, epoch and WiSE-FT alpha chosen per seed on each task's "
                     "ID validation metric (never on OOD data).")
    if layout == "paper":
        lines.append("Values ×100: mean ± sample standard deviation over seeds (few-shot: ± half-width of a 95% "
                     "interval over draws); an average over sets is taken per seed, over the seeds that have every "
                     "set; — = no result; bold = best of our rows in each column.")
    else:
        lines.append("Values ×100: mean ± sample standard deviation over seeds; n = seeds (a cell over fewer seeds "
                     "shows its own n); — = no result; bold = best of our rows in each column.")
    models = sorted({t.model for t in tables})
    if len(models) > 1:
        lines.append(f"This experiment holds runs of {len(models)} models ({'; '.join(models)}): each has its own "
                     "tables, and results of different models are never averaged together.")
    if runset.ignored:
        lines.append(f"Ignored {runset.ignored} run(s) without bench tags (sweep parents or runs logged by other tools).")
    if ref:
        lines.append(f"Reference rows: published numbers from {Path(reference).name}; Δ = ours − published.")
        shown = {t.task for t in tables}
        unused = sorted({e.task for e in ref} - shown)
        if unused:
            lines.append(f"Reference lines for tasks not in this report were not shown: {', '.join(unused)}.")
    return lines


def write_report(experiment: str | None, suite: str | None, out_dir, formats=FORMATS, selection: str = "id_val",
                 reference=None, *, model: str | None = None, plots: bool = True, layout: str | None = None) -> str:
    """Build the report and write its files under out_dir (each atomically); returns the Markdown text."""
    from bench.fsutil import atomic_write_bytes

    report = build_report(experiment, suite, formats, selection, reference, model=model, plots=plots, layout=layout)
    out = Path(out_dir)
    for rel, data in sorted(report.files.items()):
        atomic_write_bytes(out / rel, lambda f, data=data: f.write(data))
    return report.markdown
