"""The MLflow store: where it is, a client for it, and what it holds (runs by key, experiments). The rest of
bench/tracking/: runs.py (one run per job), server.py (one `mlflow server` helper), ui.py (`bench ui`),
column_view.py, system_metrics.py, model_logging.py and pyfunc_model.py.

Store: `sqlite:///$BENCH_HOME/mlflow.db` unless MLFLOW_TRACKING_URI is set (the file store is refused by
current MLflow). One experiment per suite with an explicit artifact location under BENCH_HOME (otherwise
artifacts land in ./mlruns of whatever directory the user ran from). One run per job, tagged with
`bench.run_key`; an unfinished run with the same key is reopened when its job resumes. A sweep is a parent
run (`bench.kind=sweep`, `bench.sweep_key`) whose trials are its children (`mlflow.parentRunId`).

Several processes must not write one SQLite file (MLflow #4123): executors with parallel trials serve it
through `local_server()`, one `mlflow server` on 127.0.0.1, and trials talk HTTP to it.
"""
from __future__ import annotations

import os
from pathlib import Path

from bench.config import bench_home

UNFINISHED = ("RUNNING", "FAILED", "KILLED", "SCHEDULED")


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    home = bench_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'mlflow.db'}"


def artifact_root() -> Path:
    return bench_home() / "artifacts"


_READY: set[str] = set()


def ensure_store(uri: str) -> None:
    """Create or migrate a SQLite store under a lock, once per process: two processes that open a new
    store at once would both create its tables and one would die (`duplicate column name`)."""
    if not uri.startswith("sqlite:") or uri in _READY:
        return
    import logging

    from mlflow.tracking import MlflowClient

    # "Creating initial MLflow database tables..." / "Updating database tables" on every new store: noise.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)

    from bench.runtime.locks import exclusive

    with exclusive("mlflow-store"):
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    _READY.add(uri)


def client(uri: str | None = None):
    from mlflow.tracking import MlflowClient

    uri = uri or tracking_uri()
    ensure_store(uri)
    return MlflowClient(tracking_uri=uri)


def download_text_artifact(run_id: str, path: str, uri: str) -> str | None:
    """A small text artifact from a remote artifact store; None when it is missing."""
    import tempfile

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        import mlflow.artifacts

        with tempfile.TemporaryDirectory() as tmp:
            got = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=tmp, tracking_uri=uri)
            return Path(got).read_text()
    except Exception:  # a missing artifact is not an error here: callers fall back
        return None


# MLflow 3's UI opens an experiment on its GenAI view unless the experiment says it trains models.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def _search_all(client_, experiment_id: str, filter_string: str = "") -> list:
    out, token = [], None
    while True:
        page = client_.search_runs([experiment_id], filter_string, max_results=1000, page_token=token,
                                   order_by=["attributes.start_time ASC"])
        out.extend(page)
        token = page.token
        if not token:
            return out


def _runs_by_key(client_, experiment_id: str) -> dict[str, list[tuple[str, str]]]:
    index: dict[str, list[tuple[str, str]]] = {}
    for run in _search_all(client_, experiment_id):
        key = run.data.tags.get("bench.run_key")
        if key:
            index.setdefault(key, []).append((run.info.run_id, run.info.status))
    return index


def store_exists(uri: str | None = None) -> bool:
    """False for a SQLite store whose file does not exist yet (reading it would create and migrate it)."""
    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).is_file()
    return True


def run_index(experiment: str, uri: str | None = None) -> dict[str, list[tuple[str, str]]]:
    """{run_key: [(run_id, status)]} of an experiment's active runs, read-only: no store or experiment is created."""
    uri = uri or tracking_uri()
    if not store_exists(uri):
        return {}
    c = client(uri)
    exp = c.get_experiment_by_name(experiment)
    if exp is None or exp.lifecycle_stage == "deleted":
        return {}
    return _runs_by_key(c, exp.experiment_id)


def experiment_names(uri: str | None = None) -> list[str]:
    uri = uri or tracking_uri()
    if not store_exists(uri):
        return []
    return [e.name for e in client(uri).search_experiments()]


def failure_notes(experiment: str, keys: list[str], uri: str | None = None) -> dict[str, tuple[str, str]]:
    """{run_key: (run name, its bench.error)} of the latest FAILED run of each key; {} when the store cannot be read
    (the caller falls back to the log)."""
    try:
        c = client(uri)
        exp = c.get_experiment_by_name(experiment)
        if exp is None:
            return {}
        notes: dict[str, tuple[str, str]] = {}
        for run in _search_all(c, exp.experiment_id, "attributes.status = 'FAILED'"):  # oldest first: latest wins
            key = run.data.tags.get("bench.run_key")
            if key in keys:
                notes[key] = (run.data.tags.get("mlflow.runName", key), run.data.tags.get("bench.error", ""))
        return notes
    except Exception:  # a full disk or a damaged store must not hide the failure being reported
        return {}


_REACHABLE: set[str] = set()


def check_reachable(uri: str | None = None, timeout: float = 5.0) -> None:
    """Fail with one clear error, before any work, when MLFLOW_TRACKING_URI names a server that does not
    answer (MLflow itself would retry for minutes, then fail in the middle of a sweep)."""
    import urllib.error
    import urllib.request

    from bench.errors import BenchError

    uri = uri or tracking_uri()
    if not uri.startswith(("http://", "https://")) or uri in _REACHABLE:
        return
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).read()
        _REACHABLE.add(uri)
    except urllib.error.HTTPError:
        _REACHABLE.add(uri)  # it answered (an auth proxy, a path prefix): reachable
        return
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BenchError(f"Cannot reach the MLflow tracking server {uri} (MLFLOW_TRACKING_URI): {reason}. Start it "
                         "(mlflow server --backend-store-uri postgresql://... --artifacts-destination ...) or unset "
                         "MLFLOW_TRACKING_URI to use the local SQLite store.") from None


