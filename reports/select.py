"""Model selection, DomainBed style: one rule per class, applied the same way at every level.

For each (model, task, method, seed) a rule gives every run a point (the metrics of one epoch) and a
score; the best-scoring run wins, which picks the hyperparameters of a sweep. WiSE-FT then picks alpha,
by the same rule, among the interpolations of the finetuned run chosen for that seed (so "FT + WiSE-FT"
ensembles exactly the model in the FT row). Alpha 0 (the zero-shot model) is never chosen for a WiSE-FT
row, as the paper's rows are ensembles; it stays on the curves. Ties go to the smaller run_key (hparams)
and the smaller positive alpha, so selection is deterministic.

`IDValidation` (default) is the only honest rule. `Oracle` chooses on the OOD average: an upper bound
that every caption labels as such. It re-chooses the epoch from each run's history; WiSE-FT runs were
interpolated from the ID-validation epoch's weights (that is what was saved), so only alpha and the
hyperparameters are chosen on OOD for them.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.errors import BenchError, unknown_name
from bench.reports.labels import row_id


def _describe(run) -> str:
    alpha = f", alpha {run['alpha']}" if run["kind"] == "wiseft" else ""
    return (f"run {run['run_id']} (method {run['method']}{alpha}, task {run['task']}, seed {run['seed']}, "
            f"run_key {run['run_key']})")


def sel_point(run) -> dict[str, float]:
    """The in-run selected epoch's metrics (sel/* without the prefix), plus 'epoch'."""
    point = {k[4:]: float(v) for k, v in run.items() if isinstance(k, str) and k.startswith("sel/") and pd.notna(v)}
    return point


class SelectionMethod:
    name = ""
    title = ""
    needs_history = False

    def caption(self, val_key: str) -> str:
        raise NotImplementedError

    def point(self, run, history: dict[int, dict] | None) -> dict[str, float]:
        raise NotImplementedError

    def score_key(self, val_key: str) -> str:
        raise NotImplementedError

    def score(self, run, point: dict, val_key: str) -> float:
        key = self.score_key(val_key)
        if key not in point:
            raise BenchError(f"{_describe(run)} has no '{key}', which {self.title} selection needs. It may have been "
                             "logged by an older bench or cut short; delete it in MLflow or rerun its job.")
        return point[key]


class IDValidation(SelectionMethod):
    name = "id_val"
    title = "ID-validation"

    def caption(self, val_key: str) -> str:
        return (f"Selection: hyperparameters, epoch and WiSE-FT alpha chosen on ID validation ({val_key}) "
                "per seed.")

    def point(self, run, history):
        return sel_point(run)

    def score_key(self, val_key: str) -> str:
        return val_key


class Oracle(SelectionMethod):
    name = "oracle"
    title = "oracle"
    needs_history = True

    def caption(self, val_key: str) -> str:
        return ("ORACLE selection: hyperparameters, epoch and WiSE-FT alpha chosen on the OOD test average "
                "(ood/avg) per seed. An optimistic upper bound, not a valid estimate of OOD performance.")

    def point(self, run, history):
        if run["kind"] == "wiseft" or not history:
            return sel_point(run)
        scored = [(e, m) for e, m in sorted(history.items()) if "ood/avg" in m]
        if not scored:
            return sel_point(run)  # score() then reports the missing ood/avg
        epoch, metrics = max(scored, key=lambda em: (em[1]["ood/avg"], -em[0]))  # first best epoch
        return {**metrics, "epoch": float(epoch)}

    def score_key(self, val_key: str) -> str:
        return "ood/avg"


SELECTIONS = {cls.name: cls for cls in (IDValidation, Oracle)}


def get_selection(name: str) -> SelectionMethod:
    if name not in SELECTIONS:
        raise unknown_name("selection", name, list(SELECTIONS))
    return SELECTIONS[name]()


@dataclass
class Selected:
    picks: pd.DataFrame     # model, task, row, seed, run_key, hparams, base_run_key, epoch, alpha, score, candidates
    points: pd.DataFrame    # model, task, row, seed, key, value (fractions)
    curves: pd.DataFrame    # model, task, row (base+wiseft), seed, alpha, key, value: the chosen base's alphas
    val_keys: dict[str, str]  # task -> ID validation metric key


def validation_keys(runs: pd.DataFrame) -> dict[str, str]:
    """Each task's one ID-validation metric; a run without it cannot be selected on ID validation."""
    out = {}
    # val/loss is the validation cross-entropy logged beside the task metric (few-shot selection), not a metric.
    sel_val = [c for c in runs.columns if c.startswith("sel/val/") and c != "sel/val/loss"]
    for task, group in runs.groupby("task", sort=True):
        seen = set()
        for _, run in group.iterrows():
            have = [c for c in sel_val if pd.notna(run[c])]
            if not have:
                raise BenchError(f"{_describe(run)} has no ID-validation metric (sel/val/<metric>); bench logs it at "
                                 "the end of every finished job. Delete the run in MLflow or rerun its job.")
            seen.update(have)
        if len(seen) > 1:
            raise BenchError(f"Task '{task}' mixes validation metrics {sorted(k[4:] for k in seen)}; runs of one task "
                             "must share one metric. Put them in different experiments (--experiment).")
        out[task] = next(iter(seen))[4:]
    return out


def _histories(history: pd.DataFrame | None) -> dict[str, dict[int, dict]]:
    out: dict[str, dict[int, dict]] = {}
    if history is None:
        return out
    for run_id, epoch, key, value in history.itertuples(index=False):
        out.setdefault(run_id, {}).setdefault(int(epoch), {})[key] = value  # a re-logged step: last wins
    return out


def select(runs: pd.DataFrame, rule: SelectionMethod, history: pd.DataFrame | None = None) -> Selected:
    val_keys = validation_keys(runs)
    hist = _histories(history)
    scored = []
    for _, run in runs.iterrows():
        point = rule.point(run, hist.get(run["run_id"]))
        scored.append((run, point, rule.score(run, point, val_keys[run["task"]])))

    picks, points, curves = [], [], []

    def take(run, point, score, row, n):
        picks.append({"model": run["model"], "task": run["task"], "row": row, "seed": run["seed"],
                      "run_key": run["run_key"], "hparams": run["hparams"], "base_run_key": run["base_run_key"],
                      "epoch": int(point.get("epoch", 0)), "alpha": run["alpha"] if run["kind"] == "wiseft" else None,
                      "score": score, "candidates": n, "note": run.get("note", "") or ""})
        points.extend({"model": run["model"], "task": run["task"], "row": row, "seed": run["seed"], "key": k, "value": v}
                      for k, v in sorted(point.items()) if k.startswith(("id/", "ood/", "val/")))

    jobs = [s for s in scored if s[0]["kind"] != "wiseft"]
    chosen: dict[tuple, str] = {}
    for group, items in _group(jobs, lambda r: (r["model"], r["task"], r["method"], r["seed"])).items():
        run, point, score = min(items, key=lambda s: (-s[2], s[0]["run_key"]))
        chosen[group] = run["run_key"]
        take(run, point, score, row_id(run["method"], False), len(items))

    wise = [s for s in scored if s[0]["kind"] == "wiseft"]
    for run, _, _ in wise:
        if run["alpha"] is None or pd.isna(run["alpha"]) or not run["base_method"]:
            raise BenchError(f"WiSE-FT {_describe(run)} lacks its bench.alpha or bench.base_method tag; it was not "
                             "logged by bench. Delete it in MLflow or rerun `bench run --wise-ft`.")
    for (model, task, base, seed), items in _group(wise, lambda r: (r["model"], r["task"], r["base_method"], r["seed"])).items():
        base_key = chosen.get((model, task, base, seed))
        own = [s for s in items if s[0]["base_run_key"] == base_key]
        every = own or items  # no interpolation of the chosen base run: choose over every base run's alphas
        # Alpha 0 is the zero-shot model itself: it stays on the curve but is never a "+ WiSE-FT" row.
        pool = [s for s in every if s[0]["alpha"] > 0]
        if not pool:
            continue
        run, point, score = min(pool, key=lambda s: (-s[2], s[0]["alpha"], s[0]["run_key"]))
        row = row_id(base, True)
        take(run, point, score, row, len(pool))
        for r, p, _ in sorted((s for s in every if s[0]["base_run_key"] == run["base_run_key"]), key=lambda s: s[0]["alpha"]):
            curves.extend({"model": model, "task": task, "row": row, "seed": seed, "alpha": r["alpha"], "key": k, "value": v}
                          for k, v in sorted(p.items()) if k.startswith(("id/", "ood/")))

    return Selected(
        picks=pd.DataFrame(picks, columns=["model", "task", "row", "seed", "run_key", "hparams", "base_run_key", "epoch",
                                           "alpha", "score", "candidates", "note"]),
        points=pd.DataFrame(points, columns=["model", "task", "row", "seed", "key", "value"]),
        curves=pd.DataFrame(curves, columns=["model", "task", "row", "seed", "alpha", "key", "value"]),
        val_keys=val_keys,
    )


def _group(items, key) -> dict[tuple, list]:
    out: dict[tuple, list] = {}
    for item in items:
        out.setdefault(key(item[0]), []).append(item)
    return dict(sorted(out.items(), key=lambda kv: tuple(str(x) for x in kv[0])))
