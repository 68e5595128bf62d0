"""`bench run --log-model --register NAME`: the selected weights become an MLflow model that loads back (with
open_clip only) and gives the logits bench evaluates with; the registry gets a version."""
import json
import os

import numpy as np
import torch
from mlflow.tracking import MlflowClient

from bench.cli.main import main
from bench.tracking.model_logging import _fluent_tracking_uri
from bench.tracking.store import tracking_uri


def _reference_logits(selected_path, arch, images, classnames, templates):
    """Logits from the selected weights through bench's own model loading and heads."""
    from bench.model.heads import LinearHead, tokenize_prompts, zeroshot_head
    from bench.model.factory import load_model

    loaded = load_model(arch, str(selected_path))
    loaded.model.eval()
    saved = torch.load(selected_path, map_location="cpu", weights_only=True)
    if saved["bench_head"] is not None:
        head = LinearHead(saved["bench_head"]["weight"], saved["bench_head"]["bias"])
    else:
        head = zeroshot_head(loaded.model, tokenize_prompts(loaded.tokenizer, classnames, templates))
    with torch.no_grad():
        return head(loaded.model.encode_image(torch.as_tensor(images))).numpy()


def test_log_model_loads_back_with_the_same_logits(bench_home, folder_root, capsys):
    import mlflow.pyfunc

    argv = ["run", "--folder", str(folder_root), "--methods", "ft,flyp", "--model", "bench-tiny", "--pretrained",
            "none", "--set", "epochs=1", "--set", "batch_size=8", "--workers", "0", "--device", "cpu",
            "--experiment", "logmodel", "--log-model", "--register", "tiny-clf"]
    assert main(argv) == 0
    assert "model logged: models:/" in capsys.readouterr().out
    assert "MLFLOW_TRACKING_URI" not in os.environ  # the upload leaves no process-wide store behind
    client = MlflowClient(tracking_uri())
    exp = client.get_experiment_by_name("logmodel")
    runs = {r.data.tags["bench.method"]: r for r in client.search_runs([exp.experiment_id])}
    rng = np.random.default_rng(0)
    for method in ("ft", "flyp"):  # a learned head (FT) and a head rebuilt from the text tower (FLYP)
        run = runs[method]
        assert run.info.status == "FINISHED"
        job_dir = bench_home / "jobs" / run.data.tags["bench.run_key"]
        done = json.loads((job_dir / "done.json").read_text())
        (output,) = run.outputs.model_outputs  # reopened for the upload, the run keeps the end time of its job
        assert run.info.end_time < client.get_logged_model(output.model_id).creation_timestamp
        model_uri = run.data.tags["bench.logged_model"].split(" ")[0]
        with _fluent_tracking_uri(tracking_uri()):
            model = mlflow.pyfunc.load_model(model_uri)
        shape = model.metadata.signature.inputs.inputs[0].shape
        images = rng.standard_normal((3, *shape[1:])).astype(np.float32)
        got = model.predict(images)
        meta = model.unwrap_python_model().meta
        want = _reference_logits(job_dir / "selected.pt", "bench-tiny", images, meta["classnames"], meta["templates"])
        assert got.shape == want.shape == (3, 4)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        assert done["selected_sha256"] in run.data.tags["bench.logged_model"]
    versions = client.search_model_versions("name = 'tiny-clf'")
    assert sorted(v.run_id for v in versions) == sorted(r.info.run_id for r in runs.values())
    # Rerunning the same command logs and registers nothing new.
    assert main(argv) == 0
    assert len(client.search_model_versions("name = 'tiny-clf'")) == 2

