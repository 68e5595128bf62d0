"""Evaluation over a task's sets, and frozen-encoder features (cached on disk) for linear probes."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from bench.fsutil import torch_save_atomic
from bench.metrics import get_metric
from bench.tasks import EvalSet


def make_loader(dataset, batch_size: int, workers: int, shuffle: bool = False, generator=None, device=None,
                persistent_workers: bool | None = None, prefetch_factor: int = 4, drop_last: bool = False):
    """A DataLoader that can feed a GPU: pinned host memory when the batches go to CUDA (async copies with
    `non_blocking=True`), workers kept alive across epochs and several batches prefetched per worker.
    With 0 workers on CPU it is the plain loader (tests, the toy demo)."""
    extra = {}
    if workers > 0:
        # Re-spawning workers each epoch costs seconds (dataset pickling, imports) on every pass.
        extra = {"persistent_workers": True if persistent_workers is None else persistent_workers,
                 "prefetch_factor": prefetch_factor}
    pin = device is not None and torch.device(device).type == "cuda"
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers, generator=generator,
                      drop_last=drop_last, pin_memory=pin, **extra)


def predict(fn, loader, device, context=torch.no_grad) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Outputs, labels and (for datasets that yield it, like WILDS) metadata, concatenated.

    `context` is a factory for the context each forward pass runs in: torch.no_grad by default, or a
    precision's `inference` (inference mode + autocast). The returned tensors are ordinary (usable in autograd)."""
    outs, labels, metas = predict_many([fn], loader, device, context)
    return outs[0], labels, metas


def predict_many(fns, loader, device, context=torch.no_grad):
    """Every function on each batch: one decode of each image for many classifiers (WiSE-FT alphas)."""
    outs, labels, metas = [[] for _ in fns], [], []
    for batch in loader:
        images, y = batch[0], batch[1]
        images = images.to(device, non_blocking=True)
        with context():
            results = [fn(images) for fn in fns]
        for acc, r in zip(outs, results):
            acc.append(r.float().cpu())
        labels.append(torch.as_tensor(y))
        if len(batch) > 2:
            metas.append(torch.as_tensor(batch[2]))
    # Concatenated outside `context`: tensors made in inference mode become ordinary tensors here.
    return [torch.cat(o) for o in outs], torch.cat(labels), (torch.cat(metas) if metas else None)


class Evaluator:
    """Evaluates a classifier on every set of a task; datasets and loaders are built once (with workers,
    they stay alive across epochs)."""

    def __init__(self, sets: list[EvalSet], transform, batch_size: int, workers: int, device, context=torch.no_grad):
        self.sets, self.device, self.context = sets, device, context
        self.loaders = [make_loader(s.source.split(s.split, transform), batch_size, workers, device=device)
                        for s in sets]

    def __call__(self, classifier) -> dict[str, float]:
        return self.evaluate_many([classifier])[0]

    def evaluate_many(self, classifiers) -> list[dict[str, float]]:
        """Metrics per classifier, decoding each evaluation image once for all of them."""
        results: list[dict[str, float]] = [{} for _ in classifiers]
        ood: list[list[float]] = [[] for _ in classifiers]
        for s, loader in zip(self.sets, self.loaders):
            all_logits, labels, metadata = predict_many(classifiers, loader, self.device, self.context)
            for metrics, ood_values, logits in zip(results, ood, all_logits):
                logits = s.source.project_logits(logits)
                # Official metrics (WILDS eval, ...) come from the dataset; the rest from bench.metrics.
                official = s.source.official_metrics(s.split, logits, labels, metadata) or {}
                value = official[s.metric] if s.metric in official else get_metric(s.metric)(logits, labels)
                metrics[s.key] = value
                if s.role == "val":
                    metrics["val/loss"] = torch.nn.functional.cross_entropy(logits, labels).item()
                if s.role == "ood":
                    ood_values.append(value)
        for metrics, ood_values in zip(results, ood):
            if ood_values:
                metrics["ood/avg"] = sum(ood_values) / len(ood_values)
        return results


class FeatureCache:
    """Image features of the frozen pretrained encoder (eval transform), computed once per
    (model weights, dataset and its data fingerprint, split) and cached under BENCH_HOME/cache/features.
    Changed data changes the source's fingerprint, so the key; an unreadable entry is moved aside as
    `<name>.corrupt` and rebuilt."""

    def __init__(self, cache_dir: Path, model_id: str, model, transform, batch_size: int, workers: int, device):
        self.cache_dir, self.model_id, self.model = Path(cache_dir), model_id, model
        self.transform, self.batch_size, self.workers, self.device = transform, batch_size, workers, device

    def __call__(self, source, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        ident = repr((self.model_id, source.name, sorted(source.describe().items()), split, repr(self.transform)))
        path = self.cache_dir / f"{hashlib.sha256(ident.encode()).hexdigest()[:20]}.pt"
        cached = self._load(path, ident) if path.is_file() else None
        if cached is not None:
            return cached
        was_training = self.model.training
        self.model.eval()
        loader = make_loader(source.split(split, self.transform), self.batch_size, self.workers, device=self.device)
        x, y, _ = predict(self.model.encode_image, loader, self.device)
        self.model.train(was_training)
        torch_save_atomic({"x": x, "y": y, "ident": ident}, path)
        return x, y

    @staticmethod
    def _load(path: Path, ident: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The cached (features, labels), or None after moving an unreadable or foreign entry aside."""
        import logging

        try:
            cached = torch.load(path, map_location="cpu", weights_only=True)
            x, y = cached["x"], cached["y"]
            if cached.get("ident") != ident or not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) \
                    or x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
                raise ValueError("not the features this key names")
            return x, y
        except Exception as exc:  # truncated, garbage, empty, another pickle: all rebuilt the same way
            aside = path.with_name(path.name + ".corrupt")
            path.replace(aside)
            logging.getLogger(__name__).warning("Feature cache %s is unreadable (%s: %s); moved aside to %s and "
                                                "recomputing.", path, type(exc).__name__, exc, aside.name)
            return None
