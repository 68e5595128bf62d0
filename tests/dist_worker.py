"""Code that runs in each of 2 gloo processes (tests/test_distributed.py): the same model and global batch as
one process, split the way the engine splits it, checked against the one-process result computed in the same
process before it joins the group."""
from __future__ import annotations

import os
from contextlib import nullcontext

import torch
import torch.distributed as dist

from bench.runtime.distributed import average_gradients, sync_batchnorm_stats
from bench.train.engine import prepare
from helpers import make_job

CASES = [  # (method, model, hparams, micro_batch)
    ("flyp", "bench-tiny", {}, 0),
    ("flyp", "bench-tiny", {"mask_same_class": True}, 0),
    ("flyp", "bench-tiny", {}, 3),                       # gradient caching, across ranks
    ("flyp", "bench-tiny-sigmoid", {}, 0),               # FLYP with SigLIP's pairwise sigmoid loss
    ("ft", "bench-tiny", {}, 0),
    ("ft", "bench-tiny", {}, 2),                         # gradient accumulation, across ranks
]


def _setup(folder_root, method, arch, hp):
    job = make_job(folder_root, method, **hp)
    job.model = {"arch": arch, "pretrained": None}
    prep, ctx = prepare(job)
    prep.method.setup(ctx)
    prep.method.train(True)
    return prep


def _batch(prep, n=8):
    ds = prep.task.source.split("train", prep.loaded.train_transform)
    torch.manual_seed(123)  # the random crops of the batch, alike in every process
    items = [ds[i] for i in range(n)]
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])


def _step(prep, images, labels, micro):
    """Loss, averaged gradients, and the parameters after one AdamW step (then put back as they were). An unused
    parameter rides along: without a gradient on any rank it must stay without one, so AdamW leaves it alone."""
    unused = torch.nn.Parameter(torch.ones(3))
    params = [p for p in prep.method.trainable_parameters() if p.requires_grad] + [unused]
    for p in params:
        p.grad = None
    torch.manual_seed(7)  # the template draws
    loss = prep.method.backward_step(images, labels, micro, lambda l: l.backward(), nullcontext)
    average_gradients(params)
    grads = [p.grad.clone() for p in params[:-1]]
    assert unused.grad is None
    before = [p.detach().clone() for p in params]
    # eps well above the float noise of near-zero gradients: Adam's first step divides g by |g|, and would turn
    # a difference of 1e-9 between two exact-in-theory gradients into one of lr.
    torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1, eps=1e-3).step()
    after = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, b in zip(params, before):
            p.copy_(b)
    return loss.item(), grads, after


def run(rank: int, world: int, port: int, folder_root: str, home: str) -> None:
    os.environ.update(BENCH_HOME=home, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    preps, references = [], []
    for method, arch, hp, micro in CASES:  # one process on the global batch, before joining the group
        torch.manual_seed(0)
        prep = _setup(folder_root, method, arch, hp)
        images, labels = _batch(prep)
        preps.append((prep, images, labels))
        references.append(_step(prep, images, labels, 0))  # the whole batch at once
    evaluator_one = _evaluator(preps[0][0])
    single_metrics = evaluator_one(preps[0][0].method.classifier())

    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        for (method, arch, hp, micro), (prep, images, labels), (ref_loss, ref_grads, ref_after) in zip(CASES, preps, references):
            loss, grads, after = _step(prep, images[rank::world], labels[rank::world], micro)
            what = f"{method} {arch} {hp} micro_batch={micro}"
            if method == "flyp":  # every rank computes the global batch's loss
                assert abs(loss - ref_loss) < 1e-5 * max(1, abs(ref_loss)), (what, loss, ref_loss)
            else:  # a per-sample mean: the ranks' losses average to the global one
                total = torch.tensor([loss])
                dist.all_reduce(total)
                assert abs(total.item() / world - ref_loss) < 1e-5 * max(1, abs(ref_loss)), (what, total, ref_loss)
            assert len(grads) == len(ref_grads) and len(grads) > 0
            for g, r in zip(grads, ref_grads):
                torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6, msg=lambda m: f"{what}: {m}")
            for p, r in zip(after, ref_after):  # one AdamW step: the one-process parameters
                torch.testing.assert_close(p, r, rtol=1e-4, atol=3e-5, msg=lambda m: f"{what} after AdamW: {m}")
        _check_batchnorm_sync(rank, world)
        sharded = _evaluator(preps[0][0])(preps[0][0].method.classifier())
        assert sharded == single_metrics, (sharded, single_metrics)
        assert len(_evaluator(preps[0][0]).loaders[0].dataset) < len(evaluator_one.loaders[0].dataset)  # a shard
    finally:
        dist.destroy_process_group()


def _evaluator(prep):
    from bench.train.evaluate import Evaluator

    return Evaluator(prep.task.sets, prep.loaded.eval_transform, 3, 0, prep.device)


def _check_batchnorm_sync(rank: int, world: int) -> None:
    """Each rank's BatchNorm sees its share of a batch; after the sync every rank holds the same statistics and
    the running mean is the one-process one (the update is linear in the batch mean)."""
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(3)) * 3 + 1
    one = torch.nn.BatchNorm1d(4)
    one(x)
    bn = torch.nn.BatchNorm1d(4)
    bn(x[rank::world])
    sync_batchnorm_stats(bn)
    torch.testing.assert_close(bn.running_mean, one.running_mean)
    for buf in (bn.running_mean, bn.running_var):
        gathered = [torch.empty_like(buf) for _ in range(world)]
        dist.all_gather(gathered, buf)
        assert all(torch.equal(g, gathered[0]) for g in gathered)
