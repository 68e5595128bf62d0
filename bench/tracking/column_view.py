"""The runs table's first columns in the MLflow UI: bench's shared view of each experiment."""
from __future__ import annotations

# The runs table's first columns. MLflow 3 keeps the columns a user picked in the browser only; the one
# server-side view it reads is a "shared view": an experiment tag `mlflow.sharedViewState.<key>` holding the
# UI state as JSON, applied when the runs page is opened with `?viewStateShareKey=<key>` (its Share button
# writes the same). bench keeps one such view per experiment: the headline metrics (ID validation, ID test and
# average OOD at the selected epoch) of its finished runs, then method, task and seed.
VIEW_KEY = "bench-headline"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
VIEW_TAGS = ("bench.method", "bench.task", "bench.seed")


def headline_metrics(keys) -> list[str]:
    """sel/val/<metric> (not the loss), sel/id/<set>/<metric> and sel/ood/avg, in that order."""
    keys = sorted(set(keys))
    val = [k for k in keys if k.startswith("sel/val/") and not k.endswith("loss")]
    return val + [k for k in keys if k.startswith("sel/id/")] + [k for k in keys if k == "sel/ood/avg"]


def column_view(metric_keys) -> dict:
    """The shared view's UI state (MLflow 3.17's runs table: column keys are `<type>.\`<name>\``)."""
    # No Dataset column: the table puts attributes before metrics, and its width pushed the headline metrics
    # off screen (the run name carries the task; Columns > Dataset brings it back).
    columns = [f"metrics.`{k}`" for k in headline_metrics(metric_keys)] + [f"tags.`{t}`" for t in VIEW_TAGS]
    return {"selectedColumns": columns, "columnOrder": columns, "runListHidden": False, "viewMaximized": False}


def update_column_view(client_, experiment_id: str, run_id: str) -> None:
    """Add a finished run's headline metrics to its experiment's shared view (rewritten only on a change)."""
    import json

    try:
        keys = set(client_.get_run(run_id).data.metrics)
        tag = client_.get_experiment(experiment_id).tags.get(VIEW_TAG)
        old = json.loads(tag).get("selectedColumns", []) if tag else []
        had = {c[len("metrics.`"):-1] for c in old if c.startswith("metrics.`")}
        view = column_view(had | keys)
        if view["selectedColumns"] != old:
            client_.set_experiment_tag(experiment_id, VIEW_TAG, json.dumps(view))
    except Exception as exc:  # a view is a convenience: never fail a run for it
        import logging

        logging.getLogger("bench").debug("runs table view not updated: %s", exc)


def view_query(uri: str, experiment_id: str | None) -> str:
    """`&viewStateShareKey=...` for a runs link when the experiment has bench's view, else ""."""
    if not experiment_id:
        return ""
    try:
        from bench.tracking.store import client

        tags = client(uri).get_experiment(experiment_id).tags
    except Exception:
        return ""
    return f"&viewStateShareKey={VIEW_KEY}" if VIEW_TAG in tags else ""
