"""Evaluation over a task's sets, and frozen-encoder features (cached on disk) for linear probes."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch.utils.data import Subset

from bench.runtime.distributed import current, gather_shards, shard_indices

from bench.fsutil import torch_save_atomic
from bench.train.loader import Loader
from bench.train.metrics import get_metric
from bench.spec.tasks import EvalSet


def make_loader(dataset, batch_size: int, workers: int, shuffle: bool = False, generator=None, device=None,
                persistent_workers: bool | None = None, prefetch_factor: int = 4, drop_last: bool = False,
                sampler=None):
    """A DataLoader that can feed a GPU: pinned host memory when the batches go to CUDA (async copies with
    `non_blocking=True`), workers kept alive across epochs and several batches prefetched per worker.
    With 0 workers on CPU it is the plain loader (tests, the toy demo). A worker's BenchError comes out as
    itself, one line (bench/train/loader.py)."""
    extra = {}
    if workers > 0:
        # Re-spawning workers each epoch costs seconds (dataset pickling, imports) on every pass.
        extra = {"persistent_workers": True if persistent_workers is None else persistent_workers,
                 "prefetch_factor": prefetch_factor}
    pin = device is not None and torch.device(device).type == "cuda"
    return Loader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers, generator=generator,
                  drop_last=drop_last, pin_memory=pin, sampler=sampler, **extra)


def predict(fn, loader, device, context=torch.no_grad) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Outputs, labels and (for datasets that yield it, like WILDS) metadata, concatenated.

    `context` is a factory for the context each forward pass runs in: torch.no_grad by default, or a
    precision's `inference` (inference mode + autocast). The returned tensors are ordinary (usable in autograd)."""
    outs, labels, metas = predict_many([fn], loader, device, context)
    return outs[0], labels, metas


def predict_many(fns, loader, device, context=torch.no_grad, desc: str | None = None, pad: bool = False):
    """Every function on each batch: one decode of each image for many classifiers (WiSE-FT alphas).
    With `desc`, a progress bar in a terminal (on rank 0 of a multi-process job). With `pad`, a short last
    batch is padded to the loader's batch size (its outputs cut back), so a compiled model sees one shape."""
    outs, labels, metas = [[] for _ in fns], [], []
    for batch in _progress(loader, desc):
        images, y = batch[0], batch[1]
        n = len(images)
        if pad and loader.batch_size and n < loader.batch_size:
            images = torch.cat([images, images[-1:].expand(loader.batch_size - n, *images.shape[1:])])
        images = images.to(device, non_blocking=True)
        with context():
            results = [fn(images) for fn in fns]
        for acc, r in zip(outs, results):
            acc.append(r[:n].float().cpu())
        labels.append(torch.as_tensor(y))
        if len(batch) > 2:
            metas.append(torch.as_tensor(batch[2]))
    # Concatenated outside `context`: tensors made in inference mode become ordinary tensors here.
    return [torch.cat(o) for o in outs], torch.cat(labels), (torch.cat(metas) if metas else None)


def _progress(loader, desc: str | None):
    """A transient progress bar for passes that take time (evaluation, feature extraction), only in a terminal."""
    if desc is None or not current().main:
        return loader
    import sys

    from tqdm import tqdm

    return tqdm(loader, desc=desc, leave=False, file=sys.stderr, disable=None, dynamic_ncols=True)


def validation_loss(logits: torch.Tensor, labels: torch.Tensor, objective: str = "clip") -> float:
    """The model's own loss on class scores: softmax cross-entropy for CLIP models; for SigLIP models, whose
    class scores are independent sigmoid logits, the one-vs-rest binary cross-entropy summed over classes."""
    if objective == "siglip":
        target = torch.nn.functional.one_hot(labels, logits.shape[1]).to(logits.dtype)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="sum").item() / len(labels)
    return torch.nn.functional.cross_entropy(logits, labels).item()


def _shard(dataset):
    """This rank's every-world-th sample of `dataset` (the whole dataset in one process)."""
    rank = current()
    return dataset if not rank.distributed else Subset(dataset, list(shard_indices(len(dataset))))


class Evaluator:
    """Evaluates a classifier on every set of a task; datasets and loaders are built once (with workers,
    they stay alive across epochs)."""

    def __init__(self, sets: list[EvalSet], transform, batch_size: int, workers: int, device, context=torch.no_grad,
                 objective: str = "clip", pad: bool = False):
        self.sets, self.device, self.context = sets, device, context
        self.pad = pad  # under --compile: every batch one shape (no recompile for each set's remainder)
        self.objective = objective  # how the model scores classes: val/loss follows it
        # In a multi-process job each rank scores its shard of every set; `gather_shards` restores the whole set
        # (in dataset order) on every rank, so metrics (WILDS' official ones included) see every prediction.
        datasets = [s.source.split(s.split, transform) for s in sets]
        self.sizes = [len(d) for d in datasets]
        self.loaders = [make_loader(_shard(d), batch_size, workers, device=device) for d in datasets]

    def __call__(self, classifier) -> dict[str, float]:
        return self.evaluate_many([classifier])[0]

    def evaluate_many(self, classifiers) -> list[dict[str, float]]:
        """Metrics per classifier, decoding each evaluation image once for all of them."""
        per_set = []
        for s, loader, n in zip(self.sets, self.loaders, self.sizes):
            outs, labels, metas = predict_many(classifiers, loader, self.device, self.context, desc=f"eval {s.key}",
                                               pad=self.pad)
            per_set.append(([gather_shards(o, n) for o in outs], gather_shards(labels, n), gather_shards(metas, n)))
        return self._metrics(len(classifiers), per_set)

    def evaluate_features(self, head, features) -> dict[str, float]:
        """Metrics of `head` on frozen image features: `features(source, split) -> (x, y, metadata)`, e.g. a
        FeatureCache. For methods whose image tower is the pretrained one (zero-shot, LP), this replaces a
        pass over the images with a matrix product."""
        per_set = []
        for s in self.sets:
            x, y, m = features(s.source, s.split)
            with self.context():
                logits = head(x.to(self.device)).float().cpu()
            per_set.append(([logits.clone()], y, m))
        return self._metrics(1, per_set)[0]

    def _metrics(self, n: int, per_set) -> list[dict[str, float]]:
        results: list[dict[str, float]] = [{} for _ in range(n)]
        ood: list[list[float]] = [[] for _ in range(n)]
        for s, (all_logits, labels, metadata) in zip(self.sets, per_set):
            for metrics, ood_values, logits in zip(results, ood, all_logits):
                logits = s.source.project_logits(logits)
                # Official metrics (WILDS eval, ...) come from the dataset; the rest from bench.train.metrics.
                official = s.source.official_metrics(s.split, logits, labels, metadata) or {}
                value = official[s.metric] if s.metric in official else get_metric(s.metric)(logits, labels)
                metrics[s.key] = value
                if s.role == "val":
                    metrics["val/loss"] = validation_loss(logits, labels, self.objective)
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
        x, y, _ = self.features(source, split)
        return x, y

    def features(self, source, split: str):
        """(features, labels, metadata or None) of a split, from the cache or computed once."""
        ident = repr((self.model_id, source.name, sorted(source.describe().items()), split, repr(self.transform)))
        path = self.cache_dir / f"{hashlib.sha256(ident.encode()).hexdigest()[:20]}.pt"
        cached = self._load(path, ident) if path.is_file() else None
        if cached is not None:
            return cached
        was_training = self.model.training
        self.model.eval()
        loader = make_loader(source.split(split, self.transform), self.batch_size, self.workers, device=self.device)
        outs, y, m = predict_many([self.model.encode_image], loader, self.device, desc=f"features {source.name}/{split}")
        x = outs[0]
        self.model.train(was_training)
        torch_save_atomic({"x": x, "y": y, "m": m, "ident": ident}, path)
        return x, y, m

    @staticmethod
    def _load(path: Path, ident: str):
        """The cached (features, labels, metadata), or None after moving an unreadable or foreign entry aside."""
        import logging

        try:
            cached = torch.load(path, map_location="cpu", weights_only=True)
            x, y, m = cached["x"], cached["y"], cached.get("m")
            if cached.get("ident") != ident or not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) \
                    or x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or (m is not None and len(m) != len(y)):
                raise ValueError("not the features this key names")
            return x, y, m
        except Exception as exc:  # truncated, garbage, empty, another pickle: all rebuilt the same way
            aside = path.with_name(path.name + ".corrupt")
            path.replace(aside)
            logging.getLogger(__name__).warning("Feature cache %s is unreadable (%s: %s); moved aside to %s and "
                                                "recomputing.", path, type(exc).__name__, exc, aside.name)
            return None
