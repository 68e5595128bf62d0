"""Chunked prompt encoding (bounded memory) gives the all-at-once result."""
import pytest
import torch

from bench.model.heads import class_text_embeddings, tokenize_prompts, zeroshot_head
from bench.model.factory import load_model


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    m = load_model("bench-tiny", None)
    m.model.eval()
    classes = ["cat", "dog", "bird", "fish", "horse"]
    templates = ["a photo of a {}.", "a sketch of a {}.", "a {} in the wild.", "art of the {}."]
    return m.model, tokenize_prompts(m.tokenizer, classes, templates)


@pytest.mark.parametrize("chunk", [1, 3, 4, 7, 19, 20, 1000])
def test_chunked_equals_unchunked(tiny, chunk):
    model, tokens = tiny
    with torch.no_grad():
        whole = class_text_embeddings(model, tokens, chunk_size=tokens.shape[0] * tokens.shape[1])
        chunked = class_text_embeddings(model, tokens, chunk_size=chunk)
    assert chunked.shape == (5, model.text_projection.shape[1])
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)


def test_chunks_bound_the_text_tower_batch(tiny):
    model, tokens = tiny
    seen = []
    original = model.encode_text
    model.encode_text = lambda t, normalize=False: (seen.append(t.shape[0]), original(t, normalize=normalize))[1]
    try:
        head = zeroshot_head(model, tokens, chunk_size=6)
    finally:
        del model.encode_text
    assert seen == [6, 6, 6, 2] and head.weight.shape[0] == 5


def test_gradients_flow_through_chunks(tiny):
    model, tokens = tiny
    emb = class_text_embeddings(model, tokens, chunk_size=3)
    emb.sum().backward()
    assert model.token_embedding.weight.grad is not None
    model.zero_grad()


def test_chunk_size_must_be_positive(tiny):
    with pytest.raises(ValueError, match="chunk_size"):
        class_text_embeddings(tiny[0], tiny[1], chunk_size=0)
