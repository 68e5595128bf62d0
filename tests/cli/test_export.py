"""`bench export`: a finished FLYP job becomes an open_clip `local-dir:` folder that open_clip alone loads (in a
fresh interpreter where importing bench fails) and that gives bench's logits, from the image files through
the exported preprocessing to the head rebuilt from the exported class prompts; unfinished jobs are refused
with their state."""
import json
import subprocess
import sys

import torch
from PIL import Image

from bench.cli.main import main
from bench.jobs.lifecycle import train_one
from bench.tracking.runs import MlflowTracker
from bench.train.engine import prepare
from helpers import StopAfter, make_job

# Runs with `python -I` (no cwd, no user site); importing bench raises, so only open_clip and torch are used.
LOAD = r"""
import importlib.abc, json, sys
class NoBench(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "bench" or name.startswith("bench."):
            raise ImportError("bench must not be needed to load an export")
sys.meta_path.insert(0, NoBench())
import open_clip, torch, torch.nn.functional as F
from PIL import Image
folder, images, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
model, _, preprocess = open_clip.create_model_and_transforms("local-dir:" + folder)
tokenizer = open_clip.get_tokenizer("local-dir:" + folder)
model.eval()
prompts = json.load(open(folder + "/class_prompts.json"))
names, templates = prompts["classnames"], prompts["templates"]
with torch.no_grad():
    emb = model.encode_text(tokenizer([t.format(c) for c in names for t in templates]), normalize=True)
    head = F.normalize(emb.view(len(names), len(templates), -1).mean(1), dim=-1) * model.logit_scale.exp()
    x = torch.stack([preprocess(Image.open(p)) for p in images])
    logits = F.normalize(model.encode_image(x), dim=-1) @ head.T
torch.save(logits, out)
"""


def test_exported_flyp_model_gives_bench_logits_with_open_clip_alone(bench_home, folder_root, tmp_path):
    job = make_job(folder_root, "flyp", epochs=1)
    summary = train_one(job, MlflowTracker("tests"))
    out = tmp_path / "export"
    assert main(["export", job.run_key, "--to", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["README.md", "class_prompts.json", "open_clip_config.json", "open_clip_model.safetensors"]
    cfg = json.loads((out / "open_clip_config.json").read_text())
    assert cfg["model_cfg"]["embed_dim"] == 32 and "quick_gelu" not in cfg["model_cfg"]  # bench-tiny builds GELU
    assert cfg["preprocess_cfg"]["size"] == [32, 32]
    card = (out / "README.md").read_text()
    assert "flyp" in card and "data fingerprint" in card and job.run_key in card
    assert f"{summary['sel/val/top1']:.4f}" in card
    # By MLflow run ID too, in the Hugging Face hub's layout (the model card's header says library_name).
    assert main(["export", summary["run_id"], "--to", str(tmp_path / "hf"), "--format", "hf"]) == 0
    assert (tmp_path / "hf" / "README.md").read_text().startswith("---\nlibrary_name: open_clip\n")

    images = sorted(str(p) for p in (folder_root / "test").glob("*/*.png"))[:6]
    logits_file = tmp_path / "logits.pt"
    proc = subprocess.run([sys.executable, "-I", "-c", LOAD, str(out), json.dumps(images), str(logits_file)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = torch.load(logits_file)

    prep, ctx = prepare(job, method_name="zeroshot")
    prep.method.setup(ctx)
    selected = torch.load(job.run_dir / "selected.pt", weights_only=False)
    assert selected["bench_head"] is None  # FLYP: the head comes from the exported prompts
    prep.method.load_state_dict({"model": selected["state_dict"], "head": None})
    prep.method.train(False)
    with torch.no_grad():
        ours = prep.method.classifier()(torch.stack([prep.loaded.eval_transform(Image.open(p)) for p in images]))
    assert theirs.shape == ours.shape == (6, 4)
    assert torch.allclose(theirs, ours, atol=1e-5, rtol=0), (theirs - ours).abs().max()


def test_export_refuses_unfinished_jobs_naming_their_state(bench_home, folder_root, tmp_path, capsys):
    job = make_job(folder_root, "ft", epochs=2)
    assert main(["export", job.run_key, "--to", str(tmp_path / "a")]) == 2
    assert f"No bench run with run key or MLflow run ID '{job.run_key}'" in capsys.readouterr().err
    try:
        train_one(job, MlflowTracker("tests"), reporter=StopAfter(1))
    except KeyboardInterrupt:
        pass
    assert main(["export", job.run_key, "--to", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert f"Job {job.run_key} is not finished: it is incomplete (MLflow run KILLED)" in err
    assert not (tmp_path / "b").exists()
