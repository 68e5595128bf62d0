"""One job across processes (issue 11): the global batch's loss and gradients, the sampler's coverage,
gradient caching and accumulation, sharded evaluation, and a 2-process job that is killed and resumes."""
from __future__ import annotations

import socket
from contextlib import nullcontext

import pytest
import torch
from helpers import make_job

from bench.runtime.distributed import Rank
from bench.train.engine import prepare, train_sampler

pytestmark = pytest.mark.slow  # several processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_give_the_one_process_loss_gradients_and_metrics(bench_home, folder_root):
    """FLYP (InfoNCE, masked, gradient-cached, SigLIP) and FT (whole and accumulated): each of 2 ranks takes
    every other sample of the global batch; after the gradient average every parameter's gradient equals the
    one-process gradient on the whole batch, and one AdamW step gives the one-process parameters (a parameter
    without a gradient on every rank keeps none, so AdamW leaves it alone); BatchNorm statistics agree after the
    sync; sharded evaluation gives the one-process metrics."""
    import dist_worker
    import torch.multiprocessing as mp

    mp.spawn(dist_worker.run, args=(2, _free_port(), str(folder_root), str(bench_home)), nprocs=2, join=True)


@pytest.mark.parametrize("n,batch,world", [(40, 8, 2), (41, 8, 2), (43, 12, 3), (10, 8, 4)])
def test_each_sample_is_seen_at_most_once_per_epoch_and_global_batches_match_one_process(n, batch, world):
    dataset = list(range(n))
    seed = 1234
    one = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()  # what one process draws
    per_rank = []
    for r in range(world):
        sampler = train_sampler(dataset, batch, Rank(r, world))
        sampler.seed = seed
        order = list(sampler)
        per_rank.append([order[i:i + batch // world] for i in range(0, len(order), batch // world)])
    steps = {len(b) for b in per_rank}
    assert len(steps) == 1  # every rank takes the same number of steps, of the same sizes
    seen = [i for batches in per_rank for b in batches for i in b]
    assert len(seen) == len(set(seen)) == n - n % world  # each sample at most once; only the remainder dropped
    for step in range(steps.pop()):
        global_batch = sorted(i for batches in per_rank for i in batches[step])
        assert global_batch == sorted(one[step * batch:step * batch + len(global_batch)])


def test_uneven_global_batch_is_refused_with_the_fix():
    from bench.errors import BenchError

    with pytest.raises(BenchError, match="multiple of 3"):
        train_sampler(list(range(10)), 8, Rank(0, 3))


@pytest.mark.parametrize("method,hp", [("flyp", {}), ("flyp", {"mask_same_class": True}), ("ft", {}),
                                       ("lpft", {}), ("flyp-ce", {})])
def test_micro_batches_give_the_whole_batch_loss_and_gradients(bench_home, folder_root, method, hp):
    """Gradient caching (FLYP) and accumulation (FT, LP-FT) in one process: chunks of 3 images at a time give
    the loss and gradients of the whole batch of 10. FLYP-CE redraws its class prompts per chunk, so only its
    loss shape is checked."""
    torch.manual_seed(0)
    prep, ctx = prepare(make_job(folder_root, method, **hp))
    prep.method.setup(ctx)
    prep.method.train(True)
    ds = prep.task.source.split("train", prep.loaded.eval_transform)
    images = torch.stack([ds[i][0] for i in range(10)])
    labels = torch.tensor([ds[i][1] for i in range(10)])
    params = [p for p in prep.method.trainable_parameters() if p.requires_grad]

    def step(micro):
        for p in params:
            p.grad = None
        torch.manual_seed(5)
        loss = prep.method.backward_step(images, labels, micro, lambda l: l.backward(), nullcontext)
        return loss, [p.grad.clone() for p in params]

    whole_loss, whole = step(0)
    chunked_loss, chunked = step(3)
    assert chunked_loss.shape == () and torch.isfinite(chunked_loss)
    if method == "flyp-ce":
        return
    torch.testing.assert_close(chunked_loss, whole_loss, rtol=1e-5, atol=1e-6)
    for g, w in zip(chunked, whole):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
