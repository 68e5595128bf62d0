"""Names shown to readers: method and row labels, row order (the registry's), metric names, headers,
and the fixed number formatting every output shares (golden tests compare bytes)."""
from __future__ import annotations

WISE = "+wiseft"  # row id suffix: "ft+wiseft" is FT with weight ensembling
SOUP = "@soup:"   # row id infix: "ft@soup:greedy" is the greedy soup of FT's configurations (methods/soup.py)

# Metric keys as logged -> the words a paper header uses. Unknown metrics are shown as logged.
METRIC_NAMES = {
    "top1": "top-1 acc",
    "top5": "top-5 acc",
    "macro_f1": "macro-F1",
    "F1-macro_all": "macro-F1",
    "acc_avg": "avg acc",
    "acc_worst_region": "worst-region acc",
}


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def _methods():
    from bench.methods import METHODS

    return METHODS


# A FLYP run that continued an objective other than the model's own (the matched-vs-mismatched ablation)
# gets a row of its own, right after the method's, instead of competing with it in hparam selection.
MISMATCHED = "@other-objective"
OBJECTIVE_NAMES = {"clip": "InfoNCE", "siglip": "sigmoid"}


def method_label(method: str) -> str:
    if method.endswith(MISMATCHED):
        base, _, objective = method[: -len(MISMATCHED)].partition(":")
        return f"{method_label(base)} ({OBJECTIVE_NAMES.get(objective, objective)} loss, mismatched)"
    if SOUP in method:
        base, _, kind = method.partition(SOUP)
        return f"{method_label(base)} soup ({kind})"
    methods = _methods()
    return methods.meta(method).get("label", method) if method in methods else method


def row_id(method: str, wiseft: bool) -> str:
    return f"{method}{WISE}" if wiseft else method


def split_row(row: str) -> tuple[str, bool]:
    """'ft+wiseft' -> ('ft', True); 'ft' -> ('ft', False)."""
    return (row[: -len(WISE)], True) if row.endswith(WISE) else (row, False)


def row_label(row: str) -> str:
    method, wise = split_row(row)
    return f"{method_label(method)} + WiSE-FT" if wise else method_label(method)


def row_order(row: str) -> tuple:
    """The paper's layout: every plain method in registry order (each followed by its soups), then each one
    with weight ensembling; methods outside the registry follow, alphabetically."""
    names = _methods().names()
    method, wise = split_row(row)
    ablation = method.endswith(MISMATCHED)
    # A method's soups follow its own row, uniform then greedy (and share its colour in plots).
    soup = {"uniform": 1, "greedy": 2}.get(method.partition(SOUP)[2], 3) if SOUP in method else 0
    base = method[: -len(MISMATCHED)].partition(":")[0] if ablation else method.partition(SOUP)[0]
    known = base in names
    return (wise, not known, names.index(base) if known else 0, soup, ablation, method)


def run_note(tags: dict) -> str:
    """What a row's notes say about the run behind it: the lr search that chose it (sweeps/tune.py) and a
    training that did not learn (bench/jobs/learned.py)."""
    notes = []
    keys, _, k = str(tags.get("bench.tuned", "")).partition(":")
    if keys and k:
        notes.append(f"{keys} tuned on ID val: best of {k}")
    if tags.get("bench.did_not_learn"):
        notes.append(f"did not learn: {tags['bench.did_not_learn']}")
    return "; ".join(notes)


def model_label(arch: str, pretrained: str | None) -> str:
    if pretrained in (None, "", "None", "none"):
        return f"{arch} (random init)"
    short = str(pretrained).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return f"{arch} ({short})"


def slug(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def num(x: float) -> str:
    """One decimal, never '-0.0'."""
    text = f"{x:.1f}"
    return "0.0" if text == "-0.0" else text


def signed(x: float) -> str:
    text = f"{x:+.1f}"
    return "+0.0" if text in ("-0.0", "+0.0") else text


def csv_num(x: float | None) -> str:
    """CSV values: percent with four decimals (fixed, so files are byte-stable); blank when missing."""
    if x is None:
        return ""
    text = f"{x:.4f}"
    return "0.0000" if text == "-0.0000" else text
