"""MLflow -> a tidy pandas frame: one row per FINISHED bench run, its identity (model, task, method, seed,
hyperparameters, WiSE-FT base and alpha) and its in-run selected metrics (`sel/*`) as columns.

Reads MLflow only (runs, params, tags, metrics and the small `config.yaml` / `metrics.jsonl` artifacts),
never the run directories under BENCH_HOME: a report must work on a copied or remote store.
"""
from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from bench.errors import BenchError
from bench.reports.labels import MISMATCHED, SOUP, model_label, run_note

EVAL_PREFIXES = ("val/", "id/", "ood/")
ID_COLUMNS = ["run_id", "run_key", "model", "arch", "pretrained", "task", "method", "seed", "kind",
              "base_method", "base_run_key", "alpha", "hparams", "end_time", "artifact_uri"]


@dataclass
class RunSet:
    experiment: str
    uri: str
    runs: pd.DataFrame                      # ID_COLUMNS + one column per sel/* metric (NaN when absent)
    metric_keys: dict[str, list[str]]       # run_id -> every metric key it logged (for history fallback)
    set_order: dict[str, list[str]] = field(default_factory=dict)  # task -> set names in suite order
    ignored: int = 0                        # runs without bench tags (sweep parents, foreign runs)
    client: object = None


def client_for(uri: str):
    from bench.tracking.store import client

    return client(uri)


def store_uri() -> str:
    """The tracking URI, refusing to create an empty SQLite store just to report that it is empty."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    from bench.config import bench_home

    db = bench_home() / "mlflow.db"
    if not db.is_file():
        raise BenchError(f"No MLflow store at {db}. Run `bench run` first, or set BENCH_HOME (or "
                         "MLFLOW_TRACKING_URI) to where your results are.")
    from bench.tracking.store import tracking_uri

    return tracking_uri()


def load_runs(experiment: str | None, suite: str | None, model: str | None = None) -> RunSet:
    """FINISHED bench runs of `experiment` (default: the suite's name, then 'toy'), restricted to runs
    tagged with `suite` when both are given, and to one model when `model` is given."""
    uri = store_uri()
    client = client_for(uri)
    name = experiment or suite or "toy"
    exp = client.get_experiment_by_name(name)
    if exp is None or exp.lifecycle_stage == "deleted":
        names = sorted(e.name for e in client.search_experiments())
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise BenchError(f"No MLflow experiment '{name}' in {uri}.{hint} Experiments: {', '.join(names) or '(none)'}. "
                         "Pass --experiment NAME (bench run names it after the suite unless --experiment was given).")
    runs = _search_all(client, exp.experiment_id)
    rows, keys, ignored, unfinished = [], {}, 0, {}
    for run in runs:
        tags = run.data.tags
        if "bench.method" not in tags:
            ignored += 1
            continue
        if suite and experiment and tags.get("bench.suite") != suite:
            continue
        status = run.info.status
        if status != "FINISHED":
            unfinished[status] = unfinished.get(status, 0) + 1
            continue
        rows.append(_row(run))
        keys[run.info.run_id] = sorted(run.data.metrics)
    if not rows:
        other = ", ".join(f"{n} {s}" for s, n in sorted(unfinished.items()))
        where = f"experiment '{name}'" + (f" (suite '{suite}')" if suite and experiment else "")
        raise BenchError(f"No FINISHED bench runs in {where}" + (f"; found only {other} run(s)" if other else "")
                         + ". Run `bench run` (it resumes unfinished jobs) and report again.")
    frame = _dedupe(pd.DataFrame(rows))
    frame = _pick_model(frame, model)
    keys = {r: keys[r] for r in frame["run_id"]}
    return RunSet(experiment=name, uri=uri, runs=frame, metric_keys=keys,
                  set_order=_set_order(client, frame), ignored=ignored, client=client)


def _search_all(client, experiment_id: str) -> list:
    out, token = [], None
    while True:
        page = client.search_runs([experiment_id], "", max_results=1000, order_by=["attributes.start_time ASC"],
                                  page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def _row(run) -> dict:
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    arch = tags.get("bench.model") or params.get("model.arch", "?")
    pretrained = params.get("model.pretrained")
    alpha = tags.get("bench.alpha", params.get("extra.alpha"))
    hp = sorted((k[3:], v) for k, v in params.items() if k.startswith("hp."))
    row = {
        "run_id": run.info.run_id, "run_key": tags.get("bench.run_key", run.info.run_id),
        "model": model_label(arch, pretrained), "arch": arch, "pretrained": pretrained,
        "task": tags.get("bench.task", params.get("task", "?")), "method": tags["bench.method"],
        "seed": int(tags.get("bench.seed", params.get("seed", 0))), "kind": tags.get("bench.kind", "job"),
        "base_method": tags.get("bench.base_method", params.get("extra.base_method")),
        "base_run_key": tags.get("bench.base_run_key", params.get("extra.base_run_key")),
        "alpha": float(alpha) if alpha not in (None, "") else None,
        "hparams": ", ".join(f"{k}={v}" for k, v in hp), "end_time": run.info.end_time or 0,
        "artifact_uri": run.info.artifact_uri, "note": run_note(tags),
    }
    if tags.get("bench.objective_matched") == "False":
        row["method"] = f"{row['method']}:{tags.get('bench.objective', '?')}{MISMATCHED}"
    if row["method"] == "wiseft":
        row["kind"] = "wiseft"
        if tags.get("bench.soup"):  # WiSE-FT over a soup: its row follows the soup's
            row["base_method"] = f"{tags.get('bench.soup_of')}{SOUP}{tags['bench.soup']}"
    if row["kind"] == "soup":  # a row of its own per soup kind; k of K rides in hparams (the row label shows it)
        row["method"] = f"{tags.get('bench.base_method')}{SOUP}{tags.get('bench.soup')}"
        row["hparams"] = f"soup={tags.get('bench.soup')}, k={tags.get('bench.soup_k')}, K={tags.get('bench.soup_K')}"
    row.update({k: v for k, v in metrics.items() if k.startswith("sel/")})
    return row


def _dedupe(frame: pd.DataFrame) -> pd.DataFrame:
    """A job finished twice (its done marker deleted, then rerun) has two runs with one run_key: keep the
    newest, so each job counts once."""
    frame = frame.sort_values(["run_key", "end_time", "run_id"]).drop_duplicates("run_key", keep="last")
    # WiSE-FT runs follow their base's row (a mismatched-objective FLYP base has a row of its own).
    bases = dict(zip(frame["run_key"], frame["method"]))
    wise = frame["kind"] == "wiseft"
    frame.loc[wise, "base_method"] = frame.loc[wise, "base_run_key"].map(bases).fillna(frame.loc[wise, "base_method"])
    return frame.sort_values(["model", "task", "method", "seed", "run_key"]).reset_index(drop=True)


def _pick_model(frame: pd.DataFrame, model: str | None) -> pd.DataFrame:
    if model is None:
        return frame
    hit = frame[(frame["model"] == model) | (frame["arch"] == model)]
    if hit.empty:
        labels = sorted(set(frame["model"]))
        raise BenchError(f"No runs of model '{model}' in this experiment. Models: {', '.join(labels)}.")
    return hit.reset_index(drop=True)


def read_artifact(run_id: str, artifact_uri: str, path: str, uri: str) -> str | None:
    """A small text artifact; local stores are read in place (fast, no progress bars), others downloaded."""
    parsed = urlparse(artifact_uri or "")
    if parsed.scheme in ("file", ""):
        local = Path(unquote(parsed.path)) / path
        return local.read_text() if local.is_file() else None
    from bench.tracking.store import download_text_artifact

    return download_text_artifact(run_id, path, uri)


def _set_order(client, frame: pd.DataFrame) -> dict[str, list[str]]:
    """Evaluation sets in the order the suite lists them (the paper's column order), from one run's
    logged config.yaml per task; tables fall back to alphabetical order without it."""
    import yaml

    order: dict[str, list[str]] = {}
    jobs = frame[frame["kind"] == "job"].sort_values("run_key")
    for task, group in jobs.groupby("task", sort=True):
        for _, run in group.iterrows():
            text = read_artifact(run["run_id"], run["artifact_uri"], "config.yaml", client.tracking_uri)
            try:
                spec = yaml.safe_load(text)["job"]["task_spec"] if text else None
            except (yaml.YAMLError, KeyError, TypeError):
                spec = None
            if isinstance(spec, dict):
                names = []
                for role in ("id", "ood"):
                    for entry in spec.get(role) or []:
                        names.append(entry.get("name") if isinstance(entry, dict) else str(entry))
                order[task] = [n for n in names if n]
                break
    return order


def load_history(runset: RunSet) -> pd.DataFrame:
    """Per-epoch evaluation metrics of every job run, long: run_id, epoch, key, value. From the run's
    metrics.jsonl artifact, else from MLflow's metric history (step = epoch). WiSE-FT runs have one
    point (their sel/*), so they are not listed."""
    rows = []
    for _, run in runset.runs[runset.runs["kind"] == "job"].iterrows():
        text = read_artifact(run["run_id"], run["artifact_uri"], "metrics.jsonl", runset.uri)
        if text:
            for line in text.splitlines():
                if line.strip():
                    record = json.loads(line)
                    epoch = int(record.get("epoch", 0))
                    rows += [(run["run_id"], epoch, k, float(v)) for k, v in record.items()
                             if k.startswith(EVAL_PREFIXES) and isinstance(v, (int, float))]
            continue
        for key in runset.metric_keys.get(run["run_id"], []):
            if key.startswith(EVAL_PREFIXES):
                rows += [(run["run_id"], int(m.step), key, float(m.value))
                         for m in runset.client.get_metric_history(run["run_id"], key)]
    return pd.DataFrame(rows, columns=["run_id", "epoch", "key", "value"])
