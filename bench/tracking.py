"""MLflow tracking (with bench/column_view.py and bench/system_metrics.py, the modules that talk to MLflow's
runs; bench/model_logging.py logs models).

Store: `sqlite:///$BENCH_HOME/mlflow.db` unless MLFLOW_TRACKING_URI is set (the file store is refused by
current MLflow). One experiment per suite with an explicit artifact location under BENCH_HOME (otherwise
artifacts land in ./mlruns of whatever directory the user ran from). One run per job, tagged with
`bench.run_key`; an unfinished run with the same key is reopened when its job resumes. A sweep is a parent
run (`bench.kind=sweep`, `bench.sweep_key`) whose trials are its children (`mlflow.parentRunId`).

Several processes must not write one SQLite file (MLflow #4123): executors with parallel trials serve it
through `local_server()`, one `mlflow server` on 127.0.0.1, and trials talk HTTP to it.
"""
from __future__ import annotations

import contextlib
import copy
import os
import subprocess
from pathlib import Path
from typing import Protocol

from bench.column_view import update_column_view
from bench.config import bench_home
from bench.system_metrics import start_system_metrics

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


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


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

    from bench.locks import exclusive

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


class Tracker(Protocol):
    """What the job lifecycle needs from a tracking backend (one run at a time)."""

    run_id: str | None

    def find_unfinished(self, run_key: str) -> str | None: ...
    def start(self, job, params: dict, tags: dict, resume_run_id: str | None = None) -> None: ...
    def log_metrics(self, metrics: dict, step: int) -> None: ...
    def log_text(self, text: str, name: str) -> None: ...
    def set_tags(self, tags: dict) -> None: ...
    def finish(self, status: str = "FINISHED") -> None: ...
    def final_metrics(self, run_key: str) -> dict | None: ...
    def run_params(self, run_id: str) -> dict: ...
    def set_status(self, run_id: str, status: str, tags: dict | None = None) -> None: ...


class NullTracker:
    run_id = None

    def find_unfinished(self, run_key: str) -> str | None:
        return None

    def start(self, job, params: dict, tags: dict, resume_run_id: str | None = None) -> None: ...
    def log_metrics(self, metrics: dict, step: int) -> None: ...
    def log_text(self, text: str, name: str) -> None: ...
    def set_tags(self, tags: dict) -> None: ...
    def finish(self, status: str = "FINISHED") -> None: ...

    def final_metrics(self, run_key: str) -> dict | None:
        return None

    def run_params(self, run_id: str) -> dict:
        return {}

    def set_status(self, run_id: str, status: str, tags: dict | None = None) -> None: ...


# MLflow 3's UI opens an experiment on its GenAI view unless the experiment says it trains models.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


class MlflowTracker:
    """One MLflow run at a time, through MlflowClient (no global active-run state, safe in workers)."""

    def __init__(self, experiment: str, uri: str | None = None):
        from bench.locks import exclusive

        self.uri = uri or tracking_uri()
        self.client = client(self.uri)
        self.experiment = experiment
        with exclusive("mlflow-experiment") if self.uri.startswith("sqlite:") else contextlib.nullcontext():
            self.experiment_id = self._experiment_id(experiment)  # two processes must not both create it
        self.run_id: str | None = None
        self._logged: set[tuple[str, int]] = set()
        self._monitor = None

    def fork(self) -> "MlflowTracker":
        """A tracker for another run of the same experiment, sharing the client."""
        other = copy.copy(self)
        other.run_id = None
        other._logged = set()
        other._monitor = None
        return other

    def _experiment_id(self, name: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            return exp.experiment_id
        if self.uri.startswith(("http://", "https://")):  # a server's own artifact store (--artifacts-destination)
            return self.client.create_experiment(name, tags=EXPERIMENT_TAGS)
        location = artifact_root() / name
        location.mkdir(parents=True, exist_ok=True)
        return self.client.create_experiment(name, artifact_location=location.resolve().as_uri(), tags=EXPERIMENT_TAGS)

    def find_unfinished(self, run_key: str) -> str | None:
        runs = self.client.search_runs([self.experiment_id], f"tags.`bench.run_key` = '{run_key}'",
                                       order_by=["attributes.start_time DESC"], max_results=20)
        for run in runs:  # an invalidated run (its weights were lost) is history, not something to resume
            if run.info.status in UNFINISHED and "bench.invalidated" not in run.data.tags:
                return run.info.run_id
        return None

    def start(self, job, params: dict, tags: dict, resume_run_id: str | None = None) -> None:
        from mlflow.entities import Param, RunTag

        self._logged = set()
        if resume_run_id and self._alive(resume_run_id):
            self.run_id = resume_run_id
            self.client.update_run(resume_run_id, status="RUNNING")
            self._logged = self._logged_points(resume_run_id)
        else:
            # REST stores (an MLflow server) take string tag values only; SQLite converts silently.
            run = self.client.create_run(self.experiment_id, tags={k: str(v) for k, v in tags.items()},
                                         run_name=str(tags.get("mlflow.runName", job.display_name)))
            self.run_id = run.info.run_id
            self.client.log_batch(self.run_id, params=[Param(k, _param(v)) for k, v in params.items()])
            self._log_dataset(params)
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        if tags.get("bench.kind", "job") == "job":
            self._monitor = start_system_metrics(self.run_id, self.uri, resumed=self.run_id == resume_run_id)

    def _log_dataset(self, params: dict) -> None:
        """The task's data as an MLflow dataset input (the runs table's Dataset column), keyed by its fingerprint."""
        import json

        from mlflow.entities import Dataset, DatasetInput, InputTag

        fingerprint = params.get("data.fingerprint")
        if not fingerprint:
            return
        details = {k[len("data."):]: v for k, v in params.items() if k.startswith("data.") and k != "data.fingerprint"}
        dataset = Dataset(name=str(params.get("task", "data")), digest=str(fingerprint)[:36], source_type="bench",
                          source=json.dumps(details, sort_keys=True, default=str))
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "train")])])

    def _alive(self, run_id: str) -> bool:
        """A run to resume must still exist in this store (it may have been deleted or the store replaced)."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "active"
        except MlflowException:
            return False

    def _logged_points(self, run_id: str) -> set[tuple[str, int]]:
        """(metric, step) pairs already in a reopened run, so that replaying an epoch after a kill never
        logs a point twice."""
        points = set()
        for key in self.client.get_run(run_id).data.metrics:
            points.update((key, m.step) for m in self.client.get_metric_history(run_id, key))
        return points

    def log_metrics(self, metrics: dict, step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        fresh = {k: v for k, v in metrics.items() if (k, step) not in self._logged}
        batch = [Metric(k, float(v), now, step) for k, v in fresh.items()]
        for i in range(0, len(batch), 900):  # MLflow caps a batch at 1000 metrics
            self.client.log_batch(self.run_id, metrics=batch[i:i + 900])
        self._logged.update((k, step) for k in fresh)

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self.run_id, text, name)

    def set_tags(self, tags: dict) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def finish(self, status: str = "FINISHED") -> None:
        if self._monitor is not None:  # its last samples go in before the run ends
            self._monitor.finish()
            self._monitor = None
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)
            if status == "FINISHED":
                update_column_view(self.client, self.experiment_id, self.run_id)

    def run_params(self, run_id: str) -> dict:
        return dict(self.client.get_run(run_id).data.params) if self._alive(run_id) else {}

    def final_metrics(self, run_key: str) -> dict | None:
        """The newest FINISHED run of `run_key` as a done-marker summary ({sel/...: v, run_id}), or None."""
        runs = self.client.search_runs([self.experiment_id], f"tags.`bench.run_key` = '{run_key}' and "
                                       "attributes.status = 'FINISHED'", order_by=["attributes.start_time DESC"],
                                       max_results=1)
        if not runs:
            return None
        sel = {k: v for k, v in runs[0].data.metrics.items() if k.startswith("sel/")}
        digest = runs[0].data.tags.get("bench.selected_sha256")
        extra = {"selected_sha256": digest} if digest else {}
        return {**sel, **extra, "run_key": run_key, "run_id": runs[0].info.run_id} if sel else None

    # --- sweeps: parent runs, run states, cleanup ------------------------------------------------
    def runs_by_key(self) -> dict[str, list[tuple[str, str]]]:
        return _runs_by_key(self.client, self.experiment_id)

    def open_parent(self, sweep_key: str, name: str, tags: dict, params: dict, spec_text: str) -> str:
        """The sweep's parent run: the existing one (set RUNNING again) or a new one."""
        from mlflow.entities import Param, RunTag

        runs = self.client.search_runs([self.experiment_id], f"tags.`bench.sweep_key` = '{sweep_key}' and "
                                       "tags.`bench.kind` = 'sweep'", order_by=["attributes.start_time ASC"], max_results=1)
        if runs:
            run_id = runs[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(self.experiment_id, tags={**tags, "bench.kind": "sweep", "bench.sweep_key": sweep_key},
                                     run_name=name)
        run_id = run.info.run_id
        self.client.log_batch(run_id, params=[Param(k, _param(v)) for k, v in params.items()],
                              tags=[RunTag("bench.git_sha", git_sha())])
        self.client.log_text(run_id, spec_text, "sweep.yaml")
        return run_id

    def set_status(self, run_id: str, status: str, tags: dict | None = None) -> None:
        from mlflow.entities import RunTag

        if tags:
            self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        self.client.set_terminated(run_id, status=status)

    def end_unfinished(self, run_key: str, status: str, among=("RUNNING",), tags: dict | None = None) -> list[str]:
        """Set every run of `run_key` whose status is in `among` to `status`; returns their ids."""
        changed = [rid for rid, st in self.runs_by_key().get(run_key, []) if st in among]
        for rid in changed:
            self.set_status(rid, status, tags)
        return changed

    def record_best(self, parent_run_id: str, metric: str, mode: str) -> dict | None:
        """Put the best finished trial (its `sel/` metrics averaged over seeds) on the sweep's parent run: the
        same metric names, so the parent's row lines up with its trials; its hyperparameters as `best.hp.*`
        tags (tags, unlike params, may change when a rerun finds a better trial). Returns what was recorded."""
        import time

        from mlflow.entities import Metric, RunTag

        by_point: dict[str, list] = {}
        for run in self.children(parent_run_id):
            if run.info.status == "FINISHED" and f"sel/{metric}" in run.data.metrics:
                by_point.setdefault(run.data.tags.get("bench.hparam_idx", run.info.run_id), []).append(run)
        if not by_point:
            return None

        def score(runs):
            return sum(r.data.metrics[f"sel/{metric}"] for r in runs) / len(runs)

        def rank(item):  # ties go to the lowest hyperparameter index (the default point first), not to run order
            idx = item[0]
            order = int(idx) if str(idx).isdigit() else float("inf")
            return (-score(item[1]) if mode == "max" else score(item[1]), order, str(idx))

        idx, runs = min(by_point.items(), key=rank)
        keys = set.intersection(*(set(k for k in r.data.metrics if k.startswith("sel/")) for r in runs))
        best = {k: sum(r.data.metrics[k] for r in runs) / len(runs) for k in sorted(keys)}
        now = int(time.time() * 1000)
        tags = {"bench.best_hparam_idx": idx, "bench.best_run_ids": ",".join(r.info.run_id for r in runs),
                "bench.best_seeds": len(runs)}
        tags.update({f"best.{k}": v for k, v in runs[0].data.params.items() if k.startswith("hp.")})
        self.client.log_batch(parent_run_id, metrics=[Metric(k, float(v), now, 0) for k, v in best.items()],
                              tags=[RunTag(k, str(v)) for k, v in tags.items()])
        return {"metrics": best, "tags": tags}

    def children(self, parent_run_id: str) -> list:
        return _search_all(self.client, self.experiment_id, f"tags.`mlflow.parentRunId` = '{parent_run_id}'")

    def delete_runs(self, run_ids) -> None:
        for rid in run_ids:
            self.client.delete_run(rid)


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


QUIET = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


class local_server:
    """`with local_server(uri) as http_uri:` serves a SQLite store through one `mlflow server` on
    127.0.0.1 (a free port) for the duration of the block, so that a single process writes the database.
    Any other URI is yielded unchanged. The server's log goes to $BENCH_HOME/logs/mlflow-server.log."""

    def __init__(self, uri: str | None = None, startup_timeout: float = 120.0):
        self.uri = uri or tracking_uri()
        self.timeout = startup_timeout
        self.proc = None
        self._quiet = None

    def __enter__(self) -> str:
        if not self.uri.startswith("sqlite:"):
            return self.uri
        from bench.errors import BenchError

        for _ in range(3):  # a port taken between probing and binding: try another
            http_uri = self._start()
            if http_uri:
                # MLflow prints a link per finished run for http stores; this server's links die with it.
                self._quiet = os.environ.get(QUIET)
                os.environ[QUIET] = "true"
                return http_uri
        raise BenchError(f"Could not start a local MLflow server for {self.uri}; see {self.log_path}.")

    @property
    def log_path(self) -> Path:
        return bench_home() / "logs" / "mlflow-server.log"

    def _start(self) -> str | None:
        import socket
        import sys
        import time
        import urllib.request

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job-runner processes
        env.pop("MLFLOW_TRACKING_URI", None)
        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.uri, "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1", "--default-artifact-root", artifact_root().resolve().as_uri(),
               "--uvicorn-opts", "--timeout-graceful-shutdown 2"]
        with open(self.log_path, "ab") as log:
            # Own session: a Ctrl-C in the terminal reaches bench, which stops the server after recording states.
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + self.timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return None
            try:
                urllib.request.urlopen(url + "/health", timeout=2).read()
                return url
            except OSError:
                time.sleep(0.2)
        self.stop()
        return None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __exit__(self, *exc) -> None:
        self.stop()
        if self.uri.startswith("sqlite:"):
            if self._quiet is None:
                os.environ.pop(QUIET, None)
            else:
                os.environ[QUIET] = self._quiet


def _param(value) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5990] + "...(cut)"
