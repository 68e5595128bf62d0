"""Evaluation over a task's sets, and frozen-encoder features (cached on disk) for linear probes."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from bench.fsutil import torch_save_atomic
from bench.metrics import get_metric
from bench.tasks import EvalSet


def make_loader(dataset, batch_size: int, workers: int, shuffle: bool = False, generator=None):
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                      generator=generator, drop_last=False, persistent_workers=False)


@torch.no_grad()
def predict(fn, loader, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Outputs, labels and (for datasets that yield it, like WILDS) metadata, concatenated."""
    outs, labels, metas = [], [], []
    for batch in loader:
        images, y = batch[0], batch[1]
        outs.append(fn(images.to(device, non_blocking=True)).float().cpu())
        labels.append(torch.as_tensor(y))
        if len(batch) > 2:
            metas.append(torch.as_tensor(batch[2]))
    return torch.cat(outs), torch.cat(labels), (torch.cat(metas) if metas else None)


class Evaluator:
    """Evaluates a classifier on every set of a task; datasets and loaders are built once."""

    def __init__(self, sets: list[EvalSet], transform, batch_size: int, workers: int, device):
        self.sets, self.device = sets, device
        self.loaders = [make_loader(s.source.split(s.split, transform), batch_size, workers) for s in sets]

    def __call__(self, classifier) -> dict[str, float]:
        metrics: dict[str, float] = {}
        ood = []
        for s, loader in zip(self.sets, self.loaders):
            logits, labels, metadata = predict(classifier, loader, self.device)
            logits = s.source.project_logits(logits)
            # Official metrics (WILDS eval, ...) come from the dataset; the rest from bench.metrics.
            official = s.source.official_metrics(s.split, logits, labels, metadata) or {}
            value = official[s.metric] if s.metric in official else get_metric(s.metric)(logits, labels)
            metrics[s.key] = value
            if s.role == "val":
                metrics["val/loss"] = torch.nn.functional.cross_entropy(logits, labels).item()
            if s.role == "ood":
                ood.append(value)
        if ood:
            metrics["ood/avg"] = sum(ood) / len(ood)
        return metrics


class FeatureCache:
    """Image features of the frozen pretrained encoder (eval transform), computed once per
    (model weights, dataset, split) and cached under BENCH_HOME/cache/features."""

    def __init__(self, cache_dir: Path, model_id: str, model, transform, batch_size: int, workers: int, device):
        self.cache_dir, self.model_id, self.model = Path(cache_dir), model_id, model
        self.transform, self.batch_size, self.workers, self.device = transform, batch_size, workers, device

    def __call__(self, source, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        ident = repr((self.model_id, source.name, sorted(source.describe().items()), split, repr(self.transform)))
        path = self.cache_dir / f"{hashlib.sha256(ident.encode()).hexdigest()[:20]}.pt"
        if path.is_file():
            cached = torch.load(path)
            return cached["x"], cached["y"]
        was_training = self.model.training
        self.model.eval()
        loader = make_loader(source.split(split, self.transform), self.batch_size, self.workers)
        x, y, _ = predict(self.model.encode_image, loader, self.device)
        self.model.train(was_training)
        torch_save_atomic({"x": x, "y": y, "ident": ident}, path)
        return x, y
