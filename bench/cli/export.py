"""`bench export RUN_KEY|RUN_ID --to DIR [--format open_clip|hf]` (bench/tracking/export.py does the work)."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write a finished job's model as an open_clip local-dir: folder (loads without bench)",
                       description="Write a finished job's selected weights (training job, soup or zero-shot) as an "
                                   "open_clip folder: open_clip_config.json, open_clip_model.safetensors, the "
                                   "classifier head or the class prompts, and a model card. Load it with "
                                   "open_clip.create_model_and_transforms('local-dir:DIR').")
    p.add_argument("run", metavar="RUN_KEY|RUN_ID", help="the job's run key (bench status --jobs) or its MLflow run ID")
    p.add_argument("--to", required=True, metavar="DIR", help="a new (or empty) folder")
    p.add_argument("--format", default="open_clip", choices=["open_clip", "hf"],
                   help="open_clip (default), or hf: the same folder with a Hugging Face model-card header")


def run(args) -> int:
    from bench.tracking.export import export_run

    out = export_run(args.run, args.to, args.format)
    print(f"Exported {args.run} to {out}")
    print(f'Load: open_clip.create_model_and_transforms("local-dir:{out.resolve()}")')
    return 0
