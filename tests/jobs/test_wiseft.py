"""WiSE-FT: alpha=0 is exactly the zero-shot model, alpha=1 exactly the finetuned one."""
import pytest
import torch

from bench.jobs.lifecycle import train_one

from bench.train.engine import prepare
from bench.methods.wiseft import derive_jobs, interpolate
from bench.jobs.wiseft import run_wiseft
from bench.tracking.runs import MlflowTracker
from helpers import make_job



def logits_of(prep, method, images):
    method.train(False)
    with torch.no_grad():
        return method.classifier()(images)


@pytest.mark.parametrize("base_method", ["ft", "flyp"])
def test_alpha_endpoints_reproduce_zeroshot_and_finetuned_predictions(bench_home, folder_root, base_method):
    base = make_job(folder_root, base_method)
    ft_summary = train_one(base, MlflowTracker("tests"))
    zs_summary = train_one(make_job(folder_root, "zeroshot"), MlflowTracker("tests"))
    jobs = derive_jobs(base, [0.0, 0.5, 1.0])
    out = run_wiseft(base, jobs, lambda j: MlflowTracker("tests"))
    sel = lambda s: {k: v for k, v in s.items() if k.startswith("sel/") and k != "sel/epoch" and k != "sel/epochs_run"}
    assert sel(out[0]) == sel(zs_summary)
    assert sel(out[2]) == sel(ft_summary)

    # Logit-level check on a batch: interpolated weights at the endpoints give identical logits.
    prep, ctx = prepare(base, method_name="zeroshot")
    prep.method.setup(ctx)
    images = torch.stack([prep.task.source.split("test", prep.loaded.eval_transform)[i][0] for i in range(8)])
    zs_logits = logits_of(prep, prep.method, images)
    zs_model = {k: v.clone() for k, v in prep.method.model.state_dict().items()}
    zs_head = prep.method.head.state_dict()
    selected = torch.load(base.run_dir / "selected.pt", weights_only=False)
    ft_head = selected["bench_head"]
    for alpha, expected in ((0.0, zs_logits), (1.0, None)):
        head = None if ft_head is None else interpolate(zs_head, ft_head, alpha)
        prep.method.load_state_dict({"model": interpolate(zs_model, selected["state_dict"], alpha), "head": head})
        got = logits_of(prep, prep.method, images)
        if expected is None:
            prep.method.load_state_dict({"model": selected["state_dict"], "head": ft_head})
            expected = logits_of(prep, prep.method, images)
        assert torch.equal(got, expected)


def test_interpolate_is_the_convex_combination():
    a = {"w": torch.zeros(3), "n": torch.tensor([1])}
    b = {"w": torch.ones(3) * 4, "n": torch.tensor([2])}
    mid = interpolate(a, b, 0.25)
    assert torch.equal(mid["w"], torch.ones(3)) and torch.equal(mid["n"], torch.tensor([2]))
    with pytest.raises(ValueError, match="different keys"):
        interpolate(a, {"w": b["w"]}, 0.5)


def test_each_alpha_is_evaluated_once(bench_home, folder_root, monkeypatch):
    from bench.train.evaluate import Evaluator

    base = make_job(folder_root, "ft")
    train_one(base, MlflowTracker("tests"))
    evaluated = []  # one entry per classifier evaluated (alpha 0 from cached features counts as one)
    many, features = Evaluator.evaluate_many, Evaluator.evaluate_features
    monkeypatch.setattr(Evaluator, "evaluate_many", lambda self, cs: evaluated.extend(cs) or many(self, cs))
    monkeypatch.setattr(Evaluator, "evaluate_features", lambda self, *a: evaluated.append("features") or features(self, *a))
    out = run_wiseft(base, derive_jobs(base, [0.0, 0.5, 1.0]), lambda j: MlflowTracker("tests"))
    assert len(out) == 3 and len(evaluated) == 3, evaluated
