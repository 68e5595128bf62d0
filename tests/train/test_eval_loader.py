"""Loader settings that can feed a GPU, and evaluation under a precision's inference context."""
import pytest
import torch
from torch.utils.data import TensorDataset

from bench.train.evaluate import Evaluator, make_loader, predict
from bench.train.precision import resolve_precision, supported


def data(n=10):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 6, generator=g), torch.arange(n) % 3)


def test_zero_workers_on_cpu_is_the_plain_loader():
    loader = make_loader(data(), 4, 0)
    assert not loader.pin_memory and not loader.persistent_workers and loader.prefetch_factor is None
    assert [len(b[0]) for b in loader] == [4, 4, 2]


def test_workers_persist_and_prefetch_and_cuda_batches_are_pinned():
    loader = make_loader(data(), 4, 2, device="cuda")  # constructing it needs no GPU
    assert loader.pin_memory and loader.persistent_workers and loader.prefetch_factor == 4
    assert not make_loader(data(), 4, 2, device="cpu", persistent_workers=False).persistent_workers
    assert not make_loader(data(), 4, 0, device=torch.device("cpu")).pin_memory


class FakeSource:
    name = "fake"

    def __init__(self, ds):
        self.ds = ds

    def split(self, split, transform):
        return self.ds

    def project_logits(self, logits):
        return logits

    def official_metrics(self, split, logits, labels, metadata):
        return None


def make_sets():
    from bench.spec.tasks import EvalSet

    src = FakeSource(data(12))
    return [EvalSet("val", "val", src, "val", "top1"), EvalSet("ood", "o1", src, "test", "top1")]


def test_evaluate_many_equals_one_classifier_at_a_time():
    torch.manual_seed(0)
    heads = [torch.nn.Linear(6, 3), torch.nn.Linear(6, 3)]
    ev = Evaluator(make_sets(), None, batch_size=5, workers=0, device="cpu")
    together = ev.evaluate_many(heads)
    assert together == [ev(h) for h in heads]
    assert together[0]["ood/avg"] == together[0]["ood/o1/top1"] and "val/loss" in together[1]


@pytest.mark.skipif(not supported("bf16", "cpu")[0], reason=f"bf16 on this CPU: {supported('bf16', 'cpu')[1]}")
def test_predict_under_inference_autocast_is_close_and_its_outputs_can_train():
    torch.manual_seed(0)
    head = torch.nn.Linear(6, 3)
    loader = make_loader(data(), 4, 0)
    ref, y, _ = predict(head, loader, "cpu")
    low, y2, _ = predict(head, loader, "cpu", context=resolve_precision("bf16", "cpu").inference)
    assert torch.equal(y, y2) and low.dtype == torch.float32
    torch.testing.assert_close(low, ref, atol=3e-2, rtol=3e-2)
    w = torch.zeros(3, 3, requires_grad=True)  # features from inference mode must still enter autograd (LP)
    (low @ w).sum().backward()
    assert w.grad is not None
    fp32, _, _ = predict(head, loader, "cpu", context=resolve_precision("fp32", "cpu").inference)
    (fp32 @ w).sum().backward()
