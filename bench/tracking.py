"""MLflow tracking: the only module that imports mlflow.

Store: `sqlite:///$BENCH_HOME/mlflow.db` unless MLFLOW_TRACKING_URI is set (the file store is refused by
current MLflow). One experiment per suite with an explicit artifact location under BENCH_HOME (otherwise
artifacts land in ./mlruns of whatever directory the user ran from). One run per job, tagged with
`bench.run_key`; an unfinished run with the same key is reopened when its job resumes.
"""
from __future__ import annotations

import copy
import os
import subprocess
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


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def client(uri: str | None = None):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri or tracking_uri())


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


class NullTracker:
    run_id = None

    def start(self, job, params: dict, tags: dict, resume_run_id: str | None = None) -> None: ...
    def log_metrics(self, metrics: dict, step: int) -> None: ...
    def log_text(self, text: str, name: str) -> None: ...
    def set_tags(self, tags: dict) -> None: ...
    def finish(self, status: str = "FINISHED") -> None: ...


class MlflowTracker:
    """One MLflow run at a time, through MlflowClient (no global active-run state, safe in workers)."""

    def __init__(self, experiment: str, uri: str | None = None):
        from mlflow.tracking import MlflowClient

        self.uri = uri or tracking_uri()
        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment = experiment
        self.experiment_id = self._experiment_id(experiment)
        self.run_id: str | None = None

    def fork(self) -> "MlflowTracker":
        """A tracker for another run of the same experiment, sharing the client."""
        other = copy.copy(self)
        other.run_id = None
        return other

    def _experiment_id(self, name: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            return exp.experiment_id
        location = artifact_root() / name
        location.mkdir(parents=True, exist_ok=True)
        return self.client.create_experiment(name, artifact_location=location.resolve().as_uri())

    def find_unfinished(self, run_key: str) -> str | None:
        runs = self.client.search_runs([self.experiment_id], f"tags.`bench.run_key` = '{run_key}'",
                                       order_by=["attributes.start_time DESC"], max_results=20)
        for run in runs:
            if run.info.status in UNFINISHED:
                return run.info.run_id
        return None

    def start(self, job, params: dict, tags: dict, resume_run_id: str | None = None) -> None:
        from mlflow.entities import Param, RunTag

        if resume_run_id:
            self.run_id = resume_run_id
            self.client.update_run(resume_run_id, status="RUNNING")
        else:
            run = self.client.create_run(self.experiment_id, tags=tags, run_name=job.display_name)
            self.run_id = run.info.run_id
            self.client.log_batch(self.run_id, params=[Param(k, _param(v)) for k, v in params.items()])
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: dict, step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(batch), 900):  # MLflow caps a batch at 1000 metrics
            self.client.log_batch(self.run_id, metrics=batch[i:i + 900])

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self.run_id, text, name)

    def set_tags(self, tags: dict) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def finish(self, status: str = "FINISHED") -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)


def _param(value) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5990] + "...(cut)"
