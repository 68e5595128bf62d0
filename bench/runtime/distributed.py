"""What one job needs from torch.distributed when it runs as several processes (`--gpus N`): who this rank
is, the gradient average, agreement with rank 0, and evaluation shards gathered back in order.

Every helper is the identity in a single process (no process group): the engine calls them unconditionally.
Semantics do not change with the world size (issue 11): `batch_size` is the global batch, each rank takes
an equal slice of it, gradients are averaged over ranks, and rank 0 alone writes (MLflow, checkpoints).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

BUCKET_BYTES = 32 << 20  # gradients all-reduced in flat buckets of this size (one collective per bucket)
# How long a rank waits in a collective. Long, because the other ranks wait while rank 0 alone does some work
# (an LP-FT probe's features of the whole training set, a checkpoint); a rank that dies is noticed at once by
# the launcher (elastic agent, Ray Train), not through this timeout.
COLLECTIVE_TIMEOUT = timedelta(seconds=int(os.environ.get("BENCH_COLLECTIVE_TIMEOUT_S", 2 * 3600)))


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def current() -> Rank:
    if dist.is_available() and dist.is_initialized():
        return Rank(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return Rank()


def init_process_group(device_type: str) -> Rank:
    """Join the group that the launcher (torch elastic, Ray Train) described in the environment: NCCL for GPUs,
    gloo for CPU. A group already set up (Ray Train's TorchConfig does it) is kept."""
    if not (dist.is_available() and dist.is_initialized()):
        if device_type == "cuda":  # bound to its GPU: NCCL connects eagerly and never guesses the device
            local = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            dist.init_process_group("nccl", timeout=COLLECTIVE_TIMEOUT, device_id=local)
        else:
            dist.init_process_group("gloo", timeout=COLLECTIVE_TIMEOUT)
    return current()


def local_workers(workers: int, rank: Rank | None = None) -> int:
    """Data workers of this rank: `--workers` is the node's count, shared by the ranks on the node (torch elastic
    sets LOCAL_WORLD_SIZE), so N processes do not start N times the workers the cores allow; at least one each
    when any were asked for."""
    rank = rank or current()
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", rank.world)) if rank.distributed else 1
    return max(1, workers // local_world) if workers > 0 else 0


def device_for(rank: Rank, requested: str | None) -> torch.device:
    """This rank's device: its local GPU when the job runs on GPUs, else the CPU."""
    from bench.runtime.host import pick_device

    device = pick_device(requested)
    if device.type == "cuda":
        device = torch.device("cuda", rank.local_rank)
        torch.cuda.set_device(device)
    return device


def _collective_device(tensor_device: torch.device) -> torch.device:
    """NCCL moves CUDA tensors only; gloo moves CPU tensors."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def average_gradients(params) -> None:
    """All-reduce the gradients of `params` to their mean over ranks, in flat buckets. Every rank passes the same
    parameter list, so the buckets line up. A parameter without a gradient on every rank keeps none (as in one
    process: AdamW then skips it, no decay); one with a gradient on some ranks counts as zeros on the others."""
    rank = current()
    if not rank.distributed:
        return
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

    params = list(params)
    if not params:
        return
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.int32,
                       device=_collective_device(params[0].device))
    dist.all_reduce(has)  # one small collective: which parameters have a gradient on any rank
    grads = []
    for p, anywhere in zip(params, has.tolist()):
        if not anywhere:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    for bucket in _buckets(grads):
        flat = _flatten_dense_tensors(bucket)
        dist.all_reduce(flat)  # SUM: gloo has no AVG
        flat.div_(rank.world)
        for g, reduced in zip(bucket, _unflatten_dense_tensors(flat, bucket)):
            g.copy_(reduced)


def sync_batchnorm_stats(*modules) -> None:
    """BatchNorm running statistics averaged over ranks (each rank saw its share of the batches), so the model
    evaluated and checkpointed is the same on every rank. Called before evaluation; a no-op without BatchNorm."""
    rank = current()
    if not rank.distributed:
        return
    for module in modules:
        if module is None:
            continue
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                for buf in (m.running_mean, m.running_var):
                    if buf is None:
                        continue
                    moved = buf.data.to(_collective_device(buf.device))
                    dist.all_reduce(moved)
                    buf.data.copy_(moved.div_(rank.world))


def _buckets(tensors):
    bucket, size, key = [], 0, None
    for t in tensors:
        k = (t.dtype, t.device)
        nbytes = t.numel() * t.element_size()
        if bucket and (k != key or size + nbytes > BUCKET_BYTES):
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += nbytes
        key = k
    if bucket:
        yield bucket


def sum_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """A scalar or small tensor summed over ranks (loss sums, sample counts)."""
    if not current().distributed:
        return value
    out = value.detach().clone().to(_collective_device(value.device))
    dist.all_reduce(out)
    return out.to(value.device)


def from_main(obj):
    """Rank 0's value of a picklable object, on every rank (rank 0 decides: resume, stop early, skip)."""
    if not current().distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if current().distributed:
        dist.barrier()


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (what DDP does at construction)."""
    if not current().distributed:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        moved = t.data.to(_collective_device(t.device))
        dist.broadcast(moved, src=0)
        if moved is not t.data:
            t.data.copy_(moved)


def shard_indices(n: int) -> range:
    """This rank's evaluation shard: every world-th sample from its rank (all ranks together cover 0..n-1
    once; `gather_shards` puts the results back in dataset order)."""
    rank = current()
    return range(rank.rank, n, rank.world)


def gather_shards(tensor: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """Per-rank results of `shard_indices(n)` (first dim), gathered on every rank in dataset order."""
    rank = current()
    if not rank.distributed or tensor is None:
        return tensor
    device = _collective_device(tensor.device)
    longest = len(range(0, n, rank.world))
    padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype, device=device)
    padded[: len(tensor)] = tensor.to(device)
    parts = [torch.empty_like(padded) for _ in range(rank.world)]
    dist.all_gather(parts, padded)
    out = torch.empty((n, *tensor.shape[1:]), dtype=tensor.dtype)
    for r, part in enumerate(parts):
        count = len(range(r, n, rank.world))
        out[r::rank.world] = part[:count].cpu()
    return out
