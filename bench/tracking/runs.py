"""One MLflow run per job: MlflowTracker, the Tracker the job lifecycle records through (start or reopen, log,
finish; sweep parent runs; the run index of an experiment)."""
from __future__ import annotations

import contextlib
import copy

from bench.tracking.column_view import update_column_view
from bench.runtime.host import git_sha
from bench.tracking.store import (EXPERIMENT_TAGS, UNFINISHED, _runs_by_key, _search_all, artifact_root, client,
                                  tracking_uri)
from bench.tracking.system_metrics import start_system_metrics


class MlflowTracker:
    """One MLflow run at a time, through MlflowClient (no global active-run state, safe in workers)."""

    def __init__(self, experiment: str, uri: str | None = None):
        from bench.runtime.locks import exclusive

        self.uri = uri or tracking_uri()
        self.client = client(self.uri)
        self.experiment = experiment
        with exclusive("mlflow-experiment") if self.uri.startswith("sqlite:") else contextlib.nullcontext():
            self.experiment_id = self._experiment_id(experiment)  # two processes must not both create it
        self.run_id: str | None = None
        self._logged: set[tuple[str, int]] = set()
        self._monitor = None
        self._writer: MetricWriter | None = None

    def fork(self) -> "MlflowTracker":
        """A tracker for another run of the same experiment, sharing the client."""
        other = copy.copy(self)
        other.run_id = None
        other._logged = set()
        other._monitor = None
        other._writer = None
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
        """Queued for the background writer (the training loop never waits on the store); each (metric, step)
        once. `flush()` (before a checkpoint commits, and in `finish`) waits until they are written."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        fresh = {k: v for k, v in metrics.items() if (k, step) not in self._logged}
        if not fresh:
            return
        batch = [Metric(k, float(v), now, step) for k, v in fresh.items()]
        if self._writer is None:
            self._writer = MetricWriter(self.client)
        self._writer.put(self.run_id, batch)
        self._logged.update((k, step) for k in fresh)

    def flush(self) -> None:
        """Every queued metric written (raises the writer's error, if any)."""
        if self._writer is not None:
            self._writer.flush()

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self.run_id, text, name)

    def set_tags(self, tags: dict) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def finish(self, status: str = "FINISHED") -> None:
        lost = None
        if self._writer is not None:  # every point in before the run ends, then the thread goes
            writer, self._writer = self._writer, None
            try:
                writer.close()
            except Exception as exc:  # the run still ends, FAILED: its metrics are incomplete
                lost, status = exc, ("FAILED" if status == "FINISHED" else status)
        if self._monitor is not None:  # its last samples go in before the run ends
            self._monitor.finish()
            self._monitor = None
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)
            if status == "FINISHED":
                update_column_view(self.client, self.experiment_id, self.run_id)
        if lost is not None:
            raise lost

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
            if run.data.tags.get("bench.kind", "job") != "job":
                continue  # the sweep's soups are nested here too; they are not points of the sweep
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

    def find_parent(self, sweep_key: str) -> str | None:
        """The sweep's parent run, if one was recorded (read-only, unlike open_parent)."""
        runs = self.client.search_runs([self.experiment_id], f"tags.`bench.sweep_key` = '{sweep_key}' and "
                                       "tags.`bench.kind` = 'sweep'", order_by=["attributes.start_time ASC"], max_results=1)
        return runs[0].info.run_id if runs else None

    def children(self, parent_run_id: str) -> list:
        return _search_all(self.client, self.experiment_id, f"tags.`mlflow.parentRunId` = '{parent_run_id}'")

    def delete_runs(self, run_ids) -> None:
        for rid in run_ids:
            self.client.delete_run(rid)


class MetricWriter:
    """A daemon thread that writes queued metric batches to the store in order. An error is kept and raised by
    the next `put`/`flush`, so a lost write fails the job as a synchronous write would have."""

    def __init__(self, client):
        import queue
        import threading

        self.client, self.queue, self.error = client, queue.Queue(), None
        self.thread = threading.Thread(target=self._run, name="mlflow-metrics", daemon=True)
        self.thread.start()

    def put(self, run_id: str, batch: list) -> None:
        self._raise()
        self.queue.put((run_id, batch))

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                if self.error is None:
                    run_id, batch = item
                    for i in range(0, len(batch), 900):  # MLflow caps a batch at 1000 metrics
                        self.client.log_batch(run_id, metrics=batch[i:i + 900])
            except Exception as exc:  # kept for the training thread
                self.error = exc
            finally:
                self.queue.task_done()

    def flush(self) -> None:
        self.queue.join()
        self._raise()

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error


def _param(value) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5990] + "...(cut)"
