"""`bench export RUN_KEY|RUN_ID --to DIR`: a finished job's selected weights as an open_clip `local-dir:` folder,
which open_clip, clip_benchmark and the Hugging Face hub load without bench:

    open_clip_config.json        {"model_cfg": the architecture (quick_gelu included), "preprocess_cfg": ...}
    open_clip_model.safetensors  the CLIP weights
    classifier_head.safetensors  the trained linear head (weight [C, D], bias [C]) on L2-normalised image
                                 features, for methods that train one (FT, LP-FT, L2-SP, LP, their soups)
    class_prompts.json           class names and templates; for FLYP and zero-shot (no trained head) the head
                                 is rebuilt from them with the text tower (templates averaged and normalised,
                                 times exp(logit_scale), plus SigLIP's logit bias)
    README.md                    model card: method, task, data fingerprint, metrics, bench commit, how to load

`--format hf` writes the same folder with the Hugging Face model-card header (library_name: open_clip), ready
for `huggingface-cli upload`, after which `hf-hub:ORG/NAME` loads it.
"""
from __future__ import annotations

import json
from pathlib import Path

from bench.errors import BenchError

FORMATS = ("open_clip", "hf")
WEIGHTS = "open_clip_model.safetensors"
HEAD = "classifier_head.safetensors"
PROMPTS = "class_prompts.json"


def find_run(ref: str, uri: str):
    """A run key or an MLflow run ID -> (run_key, newest MLflow run of it or None)."""
    from mlflow.exceptions import MlflowException

    from bench.tracking.store import client

    c = client(uri)
    experiments = [e.experiment_id for e in c.search_experiments()]
    runs = c.search_runs(experiments, f"tags.`bench.run_key` = '{ref}'", order_by=["attributes.start_time DESC"],
                         max_results=20) if experiments and "'" not in ref else []
    if runs:
        finished = [r for r in runs if r.info.status == "FINISHED"]
        return ref, (finished or runs)[0]
    try:
        run = c.get_run(ref)
    except MlflowException:
        from bench.config import bench_home

        if (bench_home() / "jobs" / ref).is_dir():
            return ref, None
        raise BenchError(f"No bench run with run key or MLflow run ID '{ref}' in {uri}. Run keys are in `bench status "
                         "--jobs` and in MLflow's bench.run_key tag.") from None
    key = run.data.tags.get("bench.run_key")
    if not key:
        raise BenchError(f"MLflow run {ref} is not a bench job run (no bench.run_key tag): export a job's run.")
    return key, run


def _unfinished(run_key: str, run) -> str | None:
    """Why the job cannot be exported yet, naming its state; None when it is done."""
    from bench.config import bench_home
    from bench.runtime.locks import job_lock

    d = bench_home() / "jobs" / run_key
    status = run.info.status if run is not None else None
    if job_lock(run_key).busy():
        return "running (another process holds its lock); wait for it to finish"
    if (d / "done.json").is_file() and status == "FINISHED":
        return None
    if (d / "stopped.json").is_file():
        return "stopped early by the scheduler (ASHA); `bench run` with the same selection finishes it"
    if status is not None or d.is_dir():
        return (f"incomplete (MLflow run {status or 'missing'}); rerun the command that launched it to resume it, "
                "then export")
    return "pending (never launched)"


def export_run(ref: str, out: str | Path, fmt: str = "open_clip", uri: str | None = None) -> Path:
    """Write the folder; returns it. Refuses an unfinished job (naming its state) and a non-empty folder."""
    import torch

    from bench.config import bench_home
    from bench.hashing import file_sha256
    from bench.tracking.store import tracking_uri

    if fmt not in FORMATS:
        raise BenchError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'.")
    uri = uri or tracking_uri()
    run_key, run = find_run(ref, uri)
    why = _unfinished(run_key, run)
    if why:
        raise BenchError(f"Job {run_key} is not finished: it is {why}.")
    d = bench_home() / "jobs" / run_key
    done = json.loads((d / "done.json").read_text())
    tags, params = run.data.tags, run.data.params
    selected = d / "selected.pt"
    if tags.get("bench.kind") == "wiseft" or not selected.is_file():
        raise BenchError(f"Job {run_key} ({tags.get('bench.method')}) keeps no weights of its own (WiSE-FT runs "
                         "interpolate their base at evaluation): export its base run, or a soup or training job.")
    if done.get("selected_sha256") and file_sha256(selected) != done["selected_sha256"]:
        raise BenchError(f"{selected} does not match the digest its job recorded; rerun the job to restore it.")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BenchError(f"--to {out} exists and is not an empty folder; choose a new folder.")
    saved = torch.load(selected, map_location="cpu", weights_only=True)
    task = _task(run, uri)
    out.mkdir(parents=True, exist_ok=True)
    cfg = open_clip_config(saved)
    (out / "open_clip_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    _save_tensors(saved["state_dict"], out / WEIGHTS)
    head = saved.get("bench_head")
    if head is not None:
        _save_tensors({"weight": head["weight"], "bias": head["bias"]}, out / HEAD)
    prompts = {"classnames": list(task.classnames), "templates": list(task.templates),
               "head": "trained" if head is not None else "zeroshot"}
    (out / PROMPTS).write_text(json.dumps(prompts, indent=1) + "\n")
    metrics = {k[4:]: v for k, v in done.items() if k.startswith("sel/") and "time" not in k and "per_s" not in k}
    (out / "README.md").write_text(model_card(run_key, run.info.run_id, tags, params, metrics, saved, head is not None, fmt))
    return out


def open_clip_config(saved: dict) -> dict:
    """open_clip's hub config: the architecture as built (activation included) and its preprocessing."""
    import open_clip

    from bench.model.factory import register_model_configs

    register_model_configs()
    built = saved.get("built") or {}
    name = built.get("config") or saved.get("arch")
    model_cfg = open_clip.get_model_config(name)
    if model_cfg is None:
        raise BenchError(f"Cannot export: open_clip has no config for architecture '{name}'.")
    model_cfg = dict(model_cfg)
    if built.get("activation") == "quick_gelu":
        model_cfg["quick_gelu"] = True
    size = built.get("image_size") or model_cfg["vision_cfg"].get("image_size")
    pp = {"size": size, "mean": built.get("mean") or None, "std": built.get("std") or None,
          "interpolation": built.get("interpolation"), "resize_mode": built.get("resize_mode")}
    return {"model_cfg": model_cfg, "preprocess_cfg": {k: v for k, v in pp.items() if v is not None}}


def _save_tensors(tensors: dict, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, str(path))


def _task(run, uri: str):
    """The job's task (class names, templates) from the run's config.yaml."""
    from urllib.parse import unquote, urlparse

    import yaml

    from bench.spec.tasks import build_task
    from bench.tracking.store import download_text_artifact

    parsed = urlparse(run.info.artifact_uri or "")
    local = Path(unquote(parsed.path)) / "config.yaml"
    if parsed.scheme in ("file", "") and local.is_file():  # a local store: read in place
        text = local.read_text()
    else:
        text = download_text_artifact(run.info.run_id, "config.yaml", uri)
    try:
        job = yaml.safe_load(text)["job"]
        spec = _with_root(job["task_spec"], run.data.params.get("data.root"))
        return build_task(job["task"], spec, seed=job["seed"])
    except (TypeError, KeyError, yaml.YAMLError):
        raise BenchError(f"MLflow run {run.info.run_id} has no readable config.yaml artifact: cannot tell its "
                         "classes. Export from the store the job recorded to.") from None


def _with_root(spec, root: str | None):
    """config.yaml holds the job's semantic fields, which leave paths out; a folder dataset's root is recorded
    as the run's `data.root` param: put it back where a dataset entry lacks it."""
    if isinstance(spec, dict):
        out = {k: _with_root(v, root) for k, v in spec.items()}
        if out.get("name") == "folder" and "root" not in out and root:
            out["root"] = root
        return out
    if isinstance(spec, list):
        return [_with_root(v, root) for v in spec]
    return spec


def model_card(run_key, run_id, tags, params, metrics, saved, has_head: bool, fmt: str) -> str:
    method = tags.get("bench.method", "?")
    soup = f" ({tags['bench.soup']} soup of {tags.get('bench.soup_k')} of {tags.get('bench.soup_K')} " \
           f"{tags.get('bench.base_method')} runs)" if tags.get("bench.soup") else ""
    rows = "\n".join(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in sorted(metrics.items()))
    head_text = (f"the trained linear head in `{HEAD}` (`logits = normalize(encode_image(x)) @ weight.T + bias`)"
                 if has_head else
                 f"the zero-shot head rebuilt from `{PROMPTS}`: per class, `encode_text` of every template, "
                 "normalised, averaged, normalised again, times `logit_scale.exp()` (plus `logit_bias` for SigLIP "
                 "models); `logits = normalize(encode_image(x)) @ head.T`")
    header = ""
    if fmt == "hf":
        header = ("---\nlibrary_name: open_clip\npipeline_tag: zero-shot-image-classification\ntags:\n- clip\n"
                  f"- flyp-bench\n- {method}\nlicense: other\n---\n\n")
    return f"""{header}# {tags.get('bench.task', '?')}: {method}{soup}, finetuned with flyp-bench

| | |
|---|---|
| method | {method}{soup} |
| task | {tags.get('bench.task')} (suite {tags.get('bench.suite')}), seed {tags.get('bench.seed')} |
| model | {saved.get('arch')}, zero-shot weights {params.get('model.pretrained')} |
| data fingerprint | {params.get('data.fingerprint', '?')} |
| bench commit | {tags.get('bench.git_sha', '?')} (bench {tags.get('bench.version', '?')}) |
| run key / MLflow run | {run_key} / {run_id} |

## Metrics (the epoch selected on ID validation; fractions, not %)

| metric | value |
|---|---|
{rows}

## Load it (open_clip alone)

```python
import open_clip
model, _, preprocess = open_clip.create_model_and_transforms("local-dir:THIS_FOLDER")
tokenizer = open_clip.get_tokenizer("local-dir:THIS_FOLDER")
```

Logits as bench evaluated them: {head_text}.
"""
