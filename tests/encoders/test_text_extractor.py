from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlagent.encoders import (
    EncoderChecksumError,
    ObservationLayoutError,
    TextFeaturesExtractor,
    load_encoder,
)


def _space(length=16):
    return spaces.Dict(
        {
            "history_input_ids": spaces.Box(0, 400, (2, length), np.int64),
            "history_attention_mask": spaces.Box(0, 1, (2, length), np.int64),
            "query_input_ids": spaces.Box(0, 400, (1, length), np.int64),
            "query_attention_mask": spaces.Box(0, 1, (1, length), np.int64),
            "progress": spaces.Box(0.0, 1.0, (2,), np.float32),
        }
    )


def _encode(tok, text, length=16):
    if not text:
        return [0] * length, [0] * length
    enc = tok(text, max_length=length, truncation=True, padding="max_length")
    return enc["input_ids"], enc["attention_mask"]


def _obs(tok, rows):
    out = {k: [] for k in _space().spaces}
    for history, query, progress in rows:
        pairs = [_encode(tok, t) for t in history]
        out["history_input_ids"].append([p[0] for p in pairs])
        out["history_attention_mask"].append([p[1] for p in pairs])
        q = _encode(tok, query)
        out["query_input_ids"].append([q[0]])
        out["query_attention_mask"].append([q[1]])
        out["progress"].append(progress)
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in out.items()}


@pytest.fixture(scope="module")
def tok():
    return load_encoder("tiny-random").tokenizer


def test_layout_order_segments_and_numeric_tail(tok):
    ext = TextFeaturesExtractor(_space(), encoder="tiny-random", dtype="float32")
    assert ext.features_dim == 3 * 32 + 2
    obs = _obs(tok, [(("hi", ""), "refund", [0.25, 0.5]), (("", "card"), "bye", [1.0, 0.0])])
    feats = ext(obs)
    assert feats.shape == (2, 98)
    single = ext.encode_segments(
        obs["query_input_ids"].reshape(2, 16), obs["query_attention_mask"].reshape(2, 16)
    )
    # Keys are in the Dict's (sorted) order: history (2 segments), then query, then numeric.
    torch.testing.assert_close(feats[:, 64:96], single)
    assert torch.count_nonzero(feats[0, 32:64]) == 0
    assert torch.count_nonzero(feats[1, 0:32]) == 0
    torch.testing.assert_close(feats[:, 96:], obs["progress"])


def test_float_ids_are_cast_to_long(tok):
    # SB3 casts Box observations to float32; ids must reach BERT as integers, unchanged.
    ext = TextFeaturesExtractor(_space(), encoder="tiny-random", dtype="float32", cache_size=0)
    obs = _obs(tok, [(("my card is lost", "refund"), "hello", [0.0, 0.0])])
    as_long = {k: (v.long() if "_input_ids" in k else v) for k, v in obs.items()}
    torch.testing.assert_close(ext(obs), ext(as_long))


@pytest.mark.parametrize("mode", ["frozen", "lora", "full"])
def test_encoder_stays_in_eval_mode_so_train_and_eval_features_agree(tok, mode):
    ext = TextFeaturesExtractor(_space(), encoder="tiny-random", mode=mode, dtype="float32")
    obs = _obs(tok, [(("my card is lost", "refund"), "hello", [0.0, 0.0])])
    ext.train(False)
    eval_feats = ext(obs).detach()
    ext.train(True)
    assert ext.training
    assert not ext.model.training
    assert not any(m.training for m in ext.model.modules())
    torch.testing.assert_close(ext(obs).detach(), eval_feats)


def test_frozen_encoder_is_outside_state_dict_and_parameters():
    ext = TextFeaturesExtractor(_space(), encoder="tiny-random")
    assert len(ext.state_dict()) == 0
    assert len(list(ext.parameters())) == 0
    assert all(not p.requires_grad for p in ext.model.parameters())


def test_full_mode_registers_a_trainable_encoder():
    ext = TextFeaturesExtractor(_space(), encoder="tiny-random", mode="full")
    assert all(p.requires_grad for p in ext.parameters())
    assert sum(p.numel() for p in ext.parameters()) == sum(
        p.numel() for p in load_encoder("tiny-random").model.parameters()
    )


def test_lora_mode_trains_only_adapters():
    pytest.importorskip("peft")
    ext = TextFeaturesExtractor(_space(), encoder="tiny-random", mode="lora", lora_r=4)
    trainable = [n for n, p in ext.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("query" in n for n in trainable) and any("value" in n for n in trainable)


def test_bf16_frozen_features_close_to_float32(tok):
    fp32 = TextFeaturesExtractor(_space(), encoder="tiny-random", dtype="float32")
    bf16 = TextFeaturesExtractor(_space(), encoder="tiny-random", dtype="bfloat16")
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    obs = _obs(tok, [(("my card is lost", "refund"), "hello", [0.0, 0.0])])
    a, b = fp32(obs), bf16(obs)
    assert b.dtype == torch.float32
    cos = torch.nn.functional.cosine_similarity(a[:, :96], b[:, :96]).item()
    assert cos > 0.99


def test_cls_pooling_uses_first_token(tok):
    ext = TextFeaturesExtractor(_space(), encoder="tiny-random", pooling="cls", dtype="float32")
    ids, mask = _encode(tok, "refund please")
    with torch.no_grad():
        hidden = ext.model(
            input_ids=torch.tensor([ids]), attention_mask=torch.tensor([mask])
        ).last_hidden_state
    emb = ext.encode_segments(torch.tensor([ids]), torch.tensor([mask]))
    torch.testing.assert_close(emb[0], hidden[0, 0], atol=1e-5, rtol=1e-5)


def _mean_pool(hidden, mask):
    weights = mask.unsqueeze(-1).float()
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1)


@pytest.mark.parametrize("cache_size", [0, 100])
def test_layers_concatenate_the_pools_of_the_chosen_hidden_states(tok, cache_size):
    ext = TextFeaturesExtractor(
        _space(), encoder="tiny-random", layers=[-1, 1], dtype="float32", cache_size=cache_size
    )
    assert ext.embedding_dim == 64 and ext.features_dim == 3 * 64 + 2
    ids, mask = (torch.tensor([row]) for row in _encode(tok, "refund please"))
    with torch.no_grad():
        states = ext.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    want = torch.cat([_mean_pool(states.hidden_states[i], mask) for i in (-1, 1)], dim=1)
    for _ in range(2):  # the second pass is served by the cache when there is one
        torch.testing.assert_close(ext.encode_segments(ids, mask), want, atol=1e-5, rtol=1e-5)
    default = TextFeaturesExtractor(_space(), encoder="tiny-random", dtype="float32")
    last = default.encode_segments(ids, mask)
    torch.testing.assert_close(last, ext.encode_segments(ids, mask)[:, :32], atol=1e-5, rtol=1e-5)
    # Absent segments stay zero across all the pooled layers.
    obs = _obs(tok, [(("hi", ""), "refund", [0.25, 0.5])])
    feats = ext(obs)
    assert feats.shape == (1, 194) and torch.all(feats[0, 64:128] == 0)


@pytest.mark.parametrize(
    "layers, error, message",
    [
        ([-1, 7], ValueError, "7 is out of range for an encoder with 2 layers; use 0"),
        ([2, -1], ValueError, "names the same hidden state twice"),
        ([], ValueError, "layers is empty; pass None"),
        ("-1", TypeError, "layers must be a list of hidden-state indices"),
        ([1.5], TypeError, "layers must hold integers, got 1.5"),
    ],
)
def test_bad_layers_are_explained(layers, error, message):
    with pytest.raises(error, match=re.escape(message)):
        TextFeaturesExtractor(_space(), encoder="tiny-random", layers=layers)


def test_checksum_mismatch_is_refused():
    with pytest.raises(
        EncoderChecksumError,
        match=re.escape("but the agent was built with checksum " + "0" * 64),
    ):
        TextFeaturesExtractor(_space(), encoder="tiny-random", encoder_checksum="0" * 64)


def test_bad_arguments_are_explained():
    with pytest.raises(
        ValueError, match=re.escape("mode must be one of ['frozen', 'lora', 'full'], got 'frozn'")
    ):
        TextFeaturesExtractor(_space(), encoder="tiny-random", mode="frozn")
    with pytest.raises(TypeError, match=re.escape("encoder must be a name or folder path (str)")):
        TextFeaturesExtractor(_space(), encoder=torch.nn.Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ObservationLayoutError, match=re.escape("wrap the env with")):
        TextFeaturesExtractor(spaces.Box(0, 1, (3,)), encoder="tiny-random")
    with pytest.raises(
        ObservationLayoutError, match=re.escape("has no matching 'a_attention_mask'")
    ):
        TextFeaturesExtractor(
            spaces.Dict({"a_input_ids": spaces.Box(0, 9, (1, 4), np.int64)}), encoder="tiny-random"
        )
    with pytest.raises(ObservationLayoutError, match=re.escape("Observation entry 'x' is a Text")):
        TextFeaturesExtractor(spaces.Dict({"x": spaces.Text(5)}), encoder="tiny-random")


def test_uncached_segments_encoded_in_length_groups_match_one_at_a_time(tok):
    # 24 texts of many lengths: encoded in groups of similar length (each padded to its own
    # longest), every embedding equals the text's embedding computed alone, in input order.
    ext = TextFeaturesExtractor(_space(), encoder="tiny-random", dtype="float32")
    words = "my card has not arrived and I would like to know why it is so late".split()
    texts = [" ".join(words[: 1 + (7 * i) % len(words)]) for i in range(24)]
    pairs = [_encode(tok, t) for t in texts]
    ids = torch.tensor([p[0] for p in pairs])
    mask = torch.tensor([p[1] for p in pairs])
    assert len(set(mask.sum(dim=1).tolist())) >= 6
    together = ext.encode_segments(ids, mask)
    alone = TextFeaturesExtractor(_space(), encoder="tiny-random", dtype="float32", cache_size=0)
    want = torch.cat([alone.encode_segments(ids[i : i + 1], mask[i : i + 1]) for i in range(24)])
    torch.testing.assert_close(together, want, atol=1e-5, rtol=1e-5)
