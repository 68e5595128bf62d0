"""`bench pretrain`: pretrain the toy CLIP on rendered captioned images with the project's own contrastive
loss (the same `clip_loss` FLYP finetunes with: finetune like you pretrain, literally). With `--objective
siglip` it pretrains `toy-sigmoid` (the same towers plus a learned logit bias) with the pairwise sigmoid
loss, so that FLYP's matched and mismatched objectives can be compared on CPU.

Deterministic for a seed: the corpus, the batch order and the initialisation all derive from it.
Writes an fp16 checkpoint that open_clip loads, and a JSON model card with the recipe, the wall time
and the measured zero-shot results on the toy suite.
"""
from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bench.fsutil import torch_save_atomic, write_json_atomic
from bench.model.losses import clip_loss, siglip_loss
from bench.model.factory import ASSET_DIR, CONFIG_DIR, load_model
from bench.runtime.host import derive_seed, seed_everything
from bench.train.schedule import cosine_lr


@dataclass
class Recipe:
    arch: str = "toy-clip"
    seed: int = 0
    corpus_size: int = 60000
    render_size: int = 64      # rendered like the toy tasks, then the model's eval transform resizes
    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    wd: float = 0.1
    warmup: int = 100
    logit_scale_max: float = 100.0
    objective: str = "clip"    # clip (toy-clip) or siglip (toy-sigmoid)


def render_corpus(recipe: Recipe, transform, log=print) -> tuple[torch.Tensor, list[str]]:
    from tqdm import tqdm

    from bench.datasets.toy.render import render
    from bench.datasets.toy.worlds import pretrain_corpus

    corpus = pretrain_corpus(recipe.corpus_size, seed=recipe.seed)
    images = torch.empty(len(corpus), 3, 32, 32, dtype=torch.float16)
    for i, (scene, _) in enumerate(tqdm(corpus, desc="render corpus", file=sys.stderr, disable=None)):
        images[i] = transform(render(scene, recipe.render_size)).half()
    return images, [caption for _, caption in corpus]


def pretrain(recipe: Recipe, out: Path, log=print, evaluate: bool = True) -> dict:
    from tqdm import tqdm

    t_start = time.time()
    seed_everything(recipe.seed)
    loaded = load_model(recipe.arch, None)
    model = loaded.model
    images, captions = render_corpus(recipe, loaded.eval_transform, log)
    tokens = loaded.tokenizer(captions)
    log(f"corpus: {len(captions)} captioned renders in {time.time() - t_start:.0f}s")

    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.wd)
    generator = torch.Generator().manual_seed(derive_seed(recipe.seed, "batches"))
    order = torch.randperm(len(captions), generator=generator)
    cursor, losses = 0, []
    model.train()
    bar = tqdm(range(recipe.steps), desc="pretrain", file=sys.stderr, disable=None)
    t_train = time.time()
    for step in bar:
        if cursor + recipe.batch_size > len(order):
            order, cursor = torch.randperm(len(captions), generator=generator), 0
        idx = order[cursor:cursor + recipe.batch_size]
        cursor += recipe.batch_size
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, recipe.lr, recipe.warmup, recipe.steps)
        img = model.encode_image(images[idx].float(), normalize=True)
        txt = model.encode_text(tokens[idx], normalize=True)
        if recipe.objective == "siglip":
            loss = siglip_loss(img, txt, model.logit_scale.exp(), model.logit_bias)
        else:
            loss = clip_loss(img, txt, model.logit_scale.exp())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, torch.log(torch.tensor(recipe.logit_scale_max)))
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}", img_s=f"{(step + 1) * recipe.batch_size / (time.time() - t_train):.0f}")
        if (step + 1) % max(1, recipe.steps // 10) == 0:
            log(f"step {step + 1}/{recipe.steps} loss {sum(losses[-50:]) / len(losses[-50:]):.4f}")

    out = Path(out)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    torch_save_atomic({"state_dict": state}, out)
    card = {
        "arch": recipe.arch, "recipe": asdict(recipe),
        "corpus": "bench.datasets.toy.worlds.pretrain_corpus(corpus_size, seed): every class, colour, background "
                  "and style roughly uniform, no spurious correlation; captions from the toy grammar",
        "params_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "first_loss": round(_mean(losses[:max(1, min(20, len(losses) // 4))]), 4),
        "final_loss": round(_mean(losses[-max(1, min(50, len(losses) // 4)):]), 4),
        "wall_time_s": round(time.time() - t_start, 1),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "checkpoint": out.name, "dtype": "float16",
        "model_config": json.loads((CONFIG_DIR / f"{recipe.arch}.json").read_text()),
    }
    if evaluate:
        card["zeroshot"] = zeroshot_card(recipe.arch, out)
    write_json_atomic(card, out.with_suffix(".json"))
    return card


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def zeroshot_card(arch: str, checkpoint: Path) -> dict:
    """Zero-shot results of a checkpoint on every set of the toy suite (the card's fixed sample)."""
    from bench.train.engine import prepare
    from bench.train.evaluate import Evaluator
    from bench.spec.job import Job
    from bench.spec.suites import load_suite

    suite = load_suite("toy")
    results = {}
    for task, spec in suite["tasks"].items():
        job = Job(suite="toy", experiment="toy", task=task, task_spec=spec, method="zeroshot", hparams={}, seed=0,
                  model={"arch": arch, "pretrained": str(checkpoint)}, runtime={"workers": 0})
        prep, ctx = prepare(job)
        prep.method.setup(ctx)
        prep.method.train(False)
        metrics = Evaluator(prep.task.sets, prep.loaded.eval_transform, 512, 0, prep.device)(prep.method.classifier())
        results[task] = {k: round(v, 4) for k, v in metrics.items()}
    return results


def main(args) -> int:
    objective = getattr(args, "objective", "clip")
    arch = "toy-sigmoid" if objective == "siglip" else "toy-clip"
    recipe = Recipe(arch=arch, seed=args.seed, steps=args.steps, corpus_size=args.corpus_size,
                    batch_size=args.batch_size, lr=args.lr, objective=objective)
    out = Path(args.out) if args.out else ASSET_DIR / f"{arch}.pt"
    card = pretrain(recipe, out, evaluate=not args.no_eval)
    print(json.dumps(card, indent=2))
    return 0
