from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlagent.encoders import EmbeddingCache, TextFeaturesExtractor, load_encoder


def _encode_counting(calls):
    def encode(rows):
        calls.append(rows.copy())
        return torch.as_tensor(rows[:, :2], dtype=torch.float32)

    return encode


def test_cache_is_bounded_and_evicts_least_recently_used():
    cache = EmbeddingCache(3, 2)
    calls = []
    encode = _encode_counting(calls)
    for i in range(3):
        cache.lookup(np.array([[i, i]], dtype=np.int32), encode)
    cache.lookup(np.array([[0, 0]], dtype=np.int32), encode)  # 0 becomes most recent
    cache.lookup(np.array([[9, 9]], dtype=np.int32), encode)  # evicts 1
    assert len(cache) == 3
    info = cache.info()
    assert (info.hits, info.misses, info.size, info.max_size) == (1, 4, 3, 3)
    n_calls = len(calls)
    cache.lookup(np.array([[0, 0], [2, 2], [9, 9]], dtype=np.int32), encode)
    assert len(calls) == n_calls  # all hits
    cache.lookup(np.array([[1, 1]], dtype=np.int32), encode)
    assert len(calls) == n_calls + 1


def test_duplicates_in_a_batch_are_encoded_once_and_results_are_right():
    cache = EmbeddingCache(100, 2)
    calls = []
    rows = np.array([[1, 2], [3, 4], [1, 2], [5, 6], [3, 4]], dtype=np.int32)
    out = cache.lookup(rows, _encode_counting(calls))
    assert len(calls) == 1 and len(calls[0]) == 3
    assert torch.equal(out, torch.as_tensor(rows, dtype=torch.float32))
    again = cache.lookup(rows[::-1].copy(), _encode_counting(calls))
    assert torch.equal(again, torch.as_tensor(rows[::-1].copy(), dtype=torch.float32))


def test_batch_larger_than_capacity_still_returns_every_row():
    cache = EmbeddingCache(2, 2)
    rows = np.arange(20, dtype=np.int32).reshape(10, 2)
    out = cache.lookup(rows, _encode_counting([]))
    assert torch.equal(out, torch.as_tensor(rows, dtype=torch.float32))
    assert len(cache) == 2
    out = cache.lookup(rows, _encode_counting([]))
    assert torch.equal(out, torch.as_tensor(rows, dtype=torch.float32))


def test_growth_beyond_initial_table():
    cache = EmbeddingCache(5000, 2)
    rows = np.stack([np.arange(3000), np.arange(3000)], axis=1).astype(np.int32)
    cache.lookup(rows, _encode_counting([]))
    out = cache.lookup(rows, _encode_counting([]))
    assert torch.equal(out, torch.as_tensor(rows, dtype=torch.float32))
    assert cache.info().hits == 3000


def test_non_positive_size_is_rejected():
    with pytest.raises(ValueError, match=re.escape("cache max_size must be a positive number")):
        EmbeddingCache(0, 4)


def _space(segments=3, length=16):
    shape = (segments, length)
    return spaces.Dict(
        {
            "text_input_ids": spaces.Box(0, 400, shape, np.int64),
            "text_attention_mask": spaces.Box(0, 1, shape, np.int64),
        }
    )


def _batch(tokenizer, texts_per_obs, length=16):
    ids, masks = [], []
    for texts in texts_per_obs:
        rows_i, rows_m = [], []
        for text in texts:
            if text:
                enc = tokenizer(text, max_length=length, truncation=True, padding="max_length")
                rows_i.append(enc["input_ids"])
                rows_m.append(enc["attention_mask"])
            else:
                rows_i.append([0] * length)
                rows_m.append([0] * length)
        ids.append(rows_i)
        masks.append(rows_m)
    return {
        "text_input_ids": torch.tensor(ids, dtype=torch.float32),
        "text_attention_mask": torch.tensor(masks, dtype=torch.float32),
    }


def test_cached_embeddings_equal_freshly_computed_ones():
    space = _space()
    cached = TextFeaturesExtractor(space, encoder="tiny-random", dtype="float32", cache_size=4)
    fresh = TextFeaturesExtractor(space, encoder="tiny-random", dtype="float32", cache_size=0)
    tok = load_encoder("tiny-random").tokenizer
    texts = [
        ("hello there", "", "my card was charged twice"),
        ("refund please", "hello there", "what is the fee"),
        ("a b c d e f", "my card was charged twice", ""),
    ]
    obs = _batch(tok, texts)
    first = cached(obs)
    second = cached(obs)  # hits (capacity 4 < 6 distinct texts: evictions happen too)
    reference = fresh(obs)
    torch.testing.assert_close(first, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(second, reference, atol=1e-5, rtol=1e-5)
    assert cached.cache_info().size <= 4
    assert cached.cache_info().hits > 0
    # And against BERT by hand: mean-pooled last hidden state of one segment alone.
    bert = load_encoder("tiny-random").model
    enc = tok("refund please", return_tensors="pt")
    with torch.no_grad():
        hidden = bert(**enc).last_hidden_state[0]
    torch.testing.assert_close(first[1, :32], hidden.mean(dim=0), atol=1e-5, rtol=1e-5)
    assert torch.count_nonzero(first[0, 32:64]) == 0  # absent segment


def test_cache_info_without_cache():
    extractor = TextFeaturesExtractor(_space(), encoder="tiny-random", cache_size=0)
    assert extractor.cache_info().max_size == 0
