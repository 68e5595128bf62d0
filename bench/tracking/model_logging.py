"""`bench run --log-model [--register NAME]`: each finished training job's selected weights as an MLflow model.

After the launch returns, each job with a done marker and selected weights gets, in its own (FINISHED) run,
an MLflow pyfunc model named `model` (bench/tracking/pyfunc_model.py: loads with open_clip alone, predicts the
logits bench evaluates with). `--register NAME` also makes it a version of registered model NAME. The run
is reopened only for the upload and keeps its FINISHED status and end time; its `bench.logged_model` tag
records the model's URI and the weights' digest, so rerunning the same command logs nothing twice.
"""
from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import warnings
from pathlib import Path

log = logging.getLogger("bench")
MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
MODEL_NAME = "model"


def _model_meta(job, saved: dict) -> dict:
    """What the model code needs besides the weights: how to build the model, and the zero-shot prompts."""
    from bench.spec.tasks import build_task

    built = saved.get("built") or {}
    task = build_task(job.task, job.task_spec, seed=job.seed)
    return {"arch": saved.get("arch", job.model["arch"]), "config": built.get("config", job.model["arch"]),
            "quick_gelu": built.get("activation") == "quick_gelu", "mean": built.get("mean") or None,
            "std": built.get("std") or None, "interpolation": built.get("interpolation"),
            "resize_mode": built.get("resize_mode"), "image_size": built.get("image_size"),
            "classnames": list(task.classnames), "templates": list(task.templates), "method": job.method,
            "task": job.task, "seed": job.seed, "run_key": job.run_key, "epoch": saved.get("epoch")}


def _config_file(config: str) -> Path | None:
    """The open_clip model config JSON of `config` when bench ships it (toy-clip, bench-tiny): the model code
    registers it, so the model loads where bench is not installed."""
    from bench.model.factory import CONFIG_DIR

    path = CONFIG_DIR / f"{config}.json"
    return path if path.is_file() else None


def _signature(meta: dict, n_classes: int):
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    size = meta.get("image_size") or [-1, -1]
    h, w = (size, size) if isinstance(size, int) else size
    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, h, w))]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, n_classes))]))


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for dist in ("torch", "open_clip_torch", "numpy", "mlflow"):
        try:
            reqs.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            reqs.append(dist)
    return reqs


@contextlib.contextmanager
def _fluent_tracking_uri(uri: str):
    """MLflow's fluent API (log_model) on `uri` for the block; the global URI and MLFLOW_TRACKING_URI (which
    mlflow.set_tracking_uri also sets, for subprocesses) are put back after."""
    import os

    import mlflow
    from mlflow.tracking._tracking_service import utils

    before, env = getattr(utils, "_tracking_uri", None), os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)
        if env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env


def log_model(job, run_id: str, selected: Path, register: str | None = None, uri: str | None = None) -> str:
    """Log `selected` (a job's selected.pt) as the pyfunc model of MLflow run `run_id`; returns its URI."""
    import os

    import mlflow
    import torch

    from bench.tracking.store import client, tracking_uri

    uri = uri or tracking_uri()
    c = client(uri)
    run = c.get_run(run_id)
    saved = torch.load(selected, map_location="cpu", weights_only=True)
    meta = _model_meta(job, saved)
    head = saved.get("bench_head")
    n_classes = head["weight"].shape[0] if head is not None else len(meta["classnames"])
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with _fluent_tracking_uri(uri), tempfile.TemporaryDirectory() as tmp:
        meta_path = Path(tmp) / "meta.json"
        meta_path.write_text(json.dumps(meta, indent=1))
        artifacts = {"weights": str(selected), "meta": str(meta_path)}
        config = _config_file(meta["config"])
        if config is not None:
            artifacts["model_config"] = str(config)
        with mlflow.start_run(run_id=run_id, log_system_metrics=False), warnings.catch_warnings():
            # MLflow's advice to add type hints and an input example: the signature above says it all.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\.")
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME, python_model=str(MODEL_CODE), artifacts=artifacts, pip_requirements=_requirements(),
                signature=_signature(meta, n_classes), registered_model_name=register,
                metadata={"bench.run_key": job.run_key, "bench.method": job.method, "bench.task": job.task},
            )
    # Reopening set the run RUNNING and its end time to now: put back what the job recorded.
    c.set_terminated(run_id, status=run.info.status, end_time=run.info.end_time)
    digest = run.data.tags.get("bench.selected_sha256", "")
    c.set_tag(run_id, "bench.logged_model", f"{info.model_uri} sha256={digest}")
    if register:
        c.set_tag(run_id, "bench.registered_model", f"{register} v{info.registered_model_version}")
    return info.model_uri


def log_models(jobs, register: str | None = None, uri: str | None = None) -> list[str]:
    """Log each finished training job's selected weights (once per weights digest); returns the model URIs."""
    from bench.tracking.store import client, tracking_uri

    uri = uri or tracking_uri()
    uris = []
    for job in jobs:
        done_path, selected = job.run_dir / "done.json", job.run_dir / "selected.pt"
        try:
            done = json.loads(done_path.read_text())
        except (OSError, ValueError):
            continue  # not finished (failed, or stopped early): nothing selected to log
        if not done.get("selected_sha256") or not done.get("run_id") or not selected.is_file():
            continue  # zero-shot and other jobs that train nothing keep no weights of their own
        run = client(uri).get_run(done["run_id"])
        logged = run.data.tags.get("bench.logged_model", "")
        if logged.endswith(f"sha256={done['selected_sha256']}") and (not register or "bench.registered_model" in run.data.tags):
            uris.append(logged.split(" ", 1)[0])
            continue
        model_uri = log_model(job, done["run_id"], selected, register=register, uri=uri)
        where = f", registered as '{register}'" if register else ""
        log.info("[%s] model logged: %s%s", job.display_name, model_uri, where)
        uris.append(model_uri)
    return uris
